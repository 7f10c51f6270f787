"""Telemetry attributes of an SQS queue.

Trace context travels as the W3C names ``traceparent`` / ``tracestate`` in String
message attributes, the portable default carrier: what the OpenTelemetry contrib
instrumentation of boto3 (``opentelemetry-instrumentation-boto3sqs``) writes and reads.
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

from cloudqueue.errors import QueueError

from ._queues import Queue

__all__ = ["telemetry_attributes"]


def telemetry_attributes(queue: Queue) -> dict[str, str | int]:
    """``messaging.system``, ``server.address``/``server.port`` of the client's endpoint
    and ``aws.sqs.queue.url``.

    The queue URL costs one GetQueueUrl, which the first send or receive makes anyway
    (it is cached). When the client cannot be made or the queue not found yet, what is
    unknown is left out: the first send or receive reports the problem.
    """
    attributes: dict[str, str | int] = {"messaging.system": "aws_sqs"}
    with contextlib.suppress(QueueError):  # no client yet (e.g. no region): no address
        # hostname and port only: never the user:password@ an endpoint URL may hold.
        endpoint = urlsplit(str(queue.client.meta.endpoint_url or ""))
        if endpoint.hostname:
            attributes["server.address"] = endpoint.hostname
            attributes["server.port"] = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        attributes["aws.sqs.queue.url"] = queue.url()
    return attributes
