"""Pub/Sub push and Eventarc: one HTTP request per message; 2xx acks, anything else nacks.

The request parsing and the answer are written once here; the ASGI and WSGI apps in
:mod:`._http` (:func:`~cloudqueue.serverless.pubsub_push` and
:func:`~cloudqueue.serverless.pubsub_push_wsgi`) only move bytes.

A handler annotated with the CloudEvent type gets, for an Eventarc request, Eventarc's own
event (see :mod:`cloudqueue.cloudevents._eventarc`): the delivery's native object is then
an :class:`EventarcEnvelope`, the push envelope that also keeps the request it came in.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from .._settlement import Settlement
from .._telemetry._carrier import extract
from ..driver import Delivery
from ..offload import Offload
from ..worker._handler import is_async_handler
from ..worker._typed import binding_for
from ._offload import payload_resolver
from ._tracing import PUBSUB_CARRIER, TraceSource
from ._trigger import Result, TriggerRunner

__all__ = [
    "MAX_BODY",
    "EventarcEnvelope",
    "HttpAnswer",
    "PushRequestError",
    "answer_for",
    "delivery_from_push",
    "runner_for",
]

TRIGGER = "Pub/Sub push"
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
#: Largest request accepted: 10 MB of data is about 13.4 MB of base64, plus attributes.
MAX_BODY = 16 * 1024 * 1024
REFUSALS = {
    Settlement.EXTEND: "a push request's deadline is the subscription's ack deadline; it cannot be extended",
    Settlement.DEAD_LETTER: "give the subscription a dead-letter policy: a message that keeps failing "
    "moves there after max_delivery_attempts",
}
NACK_DELAY = (
    "redelivery follows the subscription's retry policy (minimum/maximum backoff); "
    "nack() without a delay answers non-2xx"
)

HttpAnswer = tuple[int, str]


class PushRequestError(Exception):
    """The request is not a push request or CloudEvent we understand: answered with ``status``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _describe(delivery: Delivery) -> dict[str, str]:
    """The subscription's short name, from the envelope's ``projects/p/subscriptions/s``."""
    envelope = delivery.native
    subscription = envelope.get("subscription") if isinstance(envelope, dict) else None
    if isinstance(subscription, str) and subscription:
        return {"messaging.destination.subscription.name": subscription.rsplit("/", 1)[-1]}
    return {}


class EventarcEnvelope(dict[str, Any]):
    """The push envelope (``{"message": ..., "subscription": ...}``) of a request that came
    as an Eventarc CloudEvent; :meth:`cloud_event` is that event."""

    def __init__(self, envelope: Mapping[str, Any], headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(envelope)
        self._request = (headers, body)

    def cloud_event(self) -> Any:
        """The request's CloudEvent (``cloudevents`` SDK type, imported only now)."""
        from ..cloudevents._eventarc import event_from_request

        return event_from_request(*self._request)


def _request_event(message: Any) -> Any:
    envelope = message.as_(EventarcEnvelope)
    return envelope.cloud_event() if envelope is not None else None


def _for_events(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A CloudEvent-typed handler as one that gets Eventarc's event (see the module
    docstring); any other handler as it is."""
    binding = binding_for(handler)
    if binding.codec is None or not type(binding.codec).__module__.startswith("cloudqueue.cloudevents"):
        return handler
    from ..cloudevents._eventarc import handler_of_events

    return handler_of_events(handler, binding, is_async_handler(handler), _request_event)


def runner_for(handler: Callable[..., Any], offload: Offload | None, adapter: str) -> TriggerRunner:
    """The runner of ``adapter`` (``pubsub_push`` or its WSGI twin): our pointer format,
    as the Pub/Sub provider sends it."""
    handler = _for_events(handler) if callable(handler) else handler
    payloads = payload_resolver(
        offload, adapter, aws_format=False,
        settled_by="Pub/Sub records the 2xx answer as the ack",
    )
    return TriggerRunner(
        handler, TRIGGER, REFUSALS, NACK_DELAY, TraceSource("gcp_pubsub", _describe),
        payloads=payloads,
    )


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _timestamp(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        # RFC 3339 with up to nanoseconds; datetime keeps microseconds.
        return datetime.datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        raise PushRequestError(400, f"publishTime {value!r} is not an RFC 3339 timestamp") from None


def _envelope(headers: Mapping[str, str], body: bytes) -> tuple[dict[str, Any], object]:
    """The ``{"message": ..., "subscription": ...}`` envelope (an :class:`EventarcEnvelope`
    for a CloudEvent), and the delivery attempt field, from a push request, a binary
    CloudEvent or a structured CloudEvent."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PushRequestError(400, f"request body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise PushRequestError(400, "request body must be a JSON object")
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if "ce-type" in headers or content_type == "application/cloudevents+json":
        structured = "ce-type" not in headers
        event_type = document.get("type") if structured else headers["ce-type"]
        if event_type != MESSAGE_PUBLISHED:
            raise PushRequestError(400, f"CloudEvent type {event_type!r} is not {MESSAGE_PUBLISHED!r}")
        data = document.get("data") if structured else document
        if not isinstance(data, dict):
            raise PushRequestError(400, "CloudEvent data must be a JSON object with a 'message'")
        return EventarcEnvelope(data, headers, body), data.get("deliveryAttempt")
    return document, document.get("deliveryAttempt")


def delivery_from_push(headers: Mapping[str, str], body: bytes) -> Delivery:
    """The message of a push request (``headers`` with lower-case names). Raises
    :class:`PushRequestError` (400) with a clear reason for anything malformed."""
    envelope, attempt = _envelope(headers, body)
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise PushRequestError(400, "no 'message' object in the push request")
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise PushRequestError(400, "the message has no 'messageId'")
    data = message.get("data", "")
    if not isinstance(data, str):
        raise PushRequestError(400, "message 'data' must be a base64 string")
    try:
        payload = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise PushRequestError(400, "message 'data' is not valid base64") from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise PushRequestError(400, "message 'attributes' must map strings to strings")
    if attempt is not None and (type(attempt) is not int or attempt < 1):
        raise PushRequestError(400, f"deliveryAttempt must be a positive integer, not {attempt!r}")
    ordering_key = message.get("orderingKey", message.get("ordering_key")) or None
    own, trace_context = extract(PUBSUB_CARRIER, dict(attributes))
    return Delivery(
        token=None,
        id=message_id,
        body=payload,
        attributes=own,
        # Present only when the subscription has a dead-letter policy.
        delivery_attempt=attempt,
        ordering_key=ordering_key if isinstance(ordering_key, str) else None,
        enqueued_at=_timestamp(message.get("publishTime", message.get("publish_time"))),
        native=envelope,
        trace_context=trace_context,
    )


def check_request(method: str, length: int | None) -> None:
    if method != "POST":
        raise PushRequestError(405, f"push requests are POST, not {method}")
    if length is not None and length > MAX_BODY:
        raise PushRequestError(413, f"request body of {length} bytes exceeds {MAX_BODY}")


def answer_for(result: Result) -> HttpAnswer:
    """204 acks; 500 makes Pub/Sub redeliver with the subscription's backoff. The
    handler's error stays in the logs: it may hold data the caller must not see."""
    if result.ok:
        return 204, ""
    return 500, f"handler failed for message {result.delivery.id}"
