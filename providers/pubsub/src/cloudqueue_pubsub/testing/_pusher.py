"""Sending one push request over HTTP(S) and telling whether it acknowledged the message.

Plain ``http.client``, so that redirects are not followed (the real service treats a 3xx as a
failed delivery) and the timeout bounds the whole exchange by the ack deadline.
"""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit

from ._push_config import ACK_STATUSES, PushRequest


def send(request: PushRequest, timeout: float) -> bool:
    """POST the request; True when the endpoint answered with an acknowledging status.

    Connection errors, timeouts and any other status count as a nack, as in the real service.
    """
    parts = urlsplit(request.url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=request.body, headers=request.headers)
        response = connection.getresponse()
        response.read()
        return response.status in ACK_STATUSES
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        connection.close()
