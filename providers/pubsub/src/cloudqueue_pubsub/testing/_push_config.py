"""Push subscriptions: which endpoints are allowed, and what one push request looks like.

Google documents two payload formats. The default wraps the message in JSON::

    {"message": {"data": "<base64>", "attributes": {...}, "messageId": "1", "message_id": "1",
                 "publishTime": "<RFC 3339>", "publish_time": "<RFC 3339>",
                 "orderingKey": "k"},          # only when the message has one
     "subscription": "projects/P/subscriptions/S",
     "deliveryAttempt": 3}                      # only with a dead-letter policy

``no_wrapper`` sends the raw data as the body; with ``write_metadata`` the metadata goes in
``x-goog-pubsub-*`` headers and each attribute in a header of its own name.

This server only pushes to loopback endpoints: it runs in tests, and a test server that could be
told to POST anywhere would be a request forger. Authenticated push (an OIDC token signed by a
Google service account) cannot be faithful without Google's keys, so it is refused rather than
faked with an unsigned token a handler might learn to accept.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._errors import InvalidArgument, unsupported

#: The HTTP statuses Google documents as acknowledging a pushed message; anything else nacks.
ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
#: Sent by the real service on every push request.
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_push_config(config: Any) -> None:
    """Refuse endpoints off this machine, and the push options this server does not have."""
    if config.HasField("oidc_token"):
        raise unsupported("push_config.oidc_token", "authenticated push (OIDC tokens) is")
    version = config.attributes.get("x-goog-version", "v1")
    if version != "v1":
        raise unsupported(
            "push_config.attributes['x-goog-version']", f"push payload version {version!r} is"
        )
    endpoint = config.push_endpoint
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"Invalid push_config.push_endpoint {endpoint!r}: must be an http:// or https:// URL"
        )
    if not _is_loopback(parts.hostname):
        raise InvalidArgument(
            f"Invalid push_config.push_endpoint {endpoint!r}: this local server only pushes "
            "to loopback hosts (127.0.0.0/8, ::1, localhost)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as error:
        raise InvalidArgument(f"Invalid push_config.push_endpoint {endpoint!r}: {error}") from None


@dataclass(frozen=True)
class PushRequest:
    """One HTTP POST carrying one message."""

    url: str
    body: bytes
    headers: dict[str, str]


def _wrapped(message: Any, subscription: str, delivery_attempt: int) -> bytes:
    publish_time = message.publish_time.ToJsonString()
    fields: dict[str, Any] = {
        "data": base64.b64encode(message.data).decode("ascii"),
        "attributes": dict(message.attributes),
        "messageId": message.message_id,
        "message_id": message.message_id,
        "publishTime": publish_time,
        "publish_time": publish_time,
    }
    if message.ordering_key:
        fields["orderingKey"] = message.ordering_key
    document: dict[str, Any] = {"message": fields, "subscription": subscription}
    if delivery_attempt:
        document["deliveryAttempt"] = delivery_attempt
    return json.dumps(document).encode("utf-8")


def _metadata_headers(message: Any, subscription: str, delivery_attempt: int) -> dict[str, str]:
    headers = {
        "x-goog-pubsub-subscription-name": subscription,
        "x-goog-pubsub-message-id": message.message_id,
        "x-goog-pubsub-publish-time": message.publish_time.ToJsonString(),
    }
    if message.ordering_key:
        headers["x-goog-pubsub-ordering-key"] = message.ordering_key
    if delivery_attempt:
        headers["x-goog-pubsub-delivery-attempt"] = str(delivery_attempt)
    for key, value in message.attributes.items():
        # An attribute that is not a legal header name or value cannot travel as a header.
        if _HEADER_NAME.fullmatch(key) and value.isprintable():
            headers[key] = value
    return headers


def push_request(config: Any, message: Any, delivery_attempt: int) -> PushRequest:
    """The request that delivers ``message`` for the subscription ``config``."""
    push = config.push_config
    headers = {"User-Agent": USER_AGENT}
    if push.HasField("no_wrapper"):
        body = bytes(message.data)
        headers["Content-Type"] = "application/octet-stream"
        if push.no_wrapper.write_metadata:
            headers.update(_metadata_headers(message, config.name, delivery_attempt))
    else:
        body = _wrapped(message, config.name, delivery_attempt)
        headers["Content-Type"] = "application/json"
    return PushRequest(push.push_endpoint, body, headers)
