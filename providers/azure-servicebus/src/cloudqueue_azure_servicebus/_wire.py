"""Portable messages to the AMQP messages the SDK sends, and received messages back to deliveries.

Deduplication ids: Service Bus duplicate detection works on MessageId, so a message's
``deduplication_id`` is sent as its MessageId, and other messages get a random one.
MessageIds cannot tell the two apart (nor can a copy scheduled by ``nack(delay)``,
which needs an id of its own), so the user's id also travels in the application
property :data:`DEDUPLICATION_ID_PROPERTY` (under the reserved ``cloudqueue.`` prefix
users cannot send), read back as ``Delivery.deduplication_id`` and stripped from the
attributes. A message without it, from cloudqueue or any other client, reports None.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any, cast

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpAnnotatedMessage, AmqpMessageProperties
from cloudqueue.driver import Delivery, Message
from cloudqueue.wire import (
    CONTENT_TYPE_ATTRIBUTE,
    DEAD_LETTER_REASON,
    SERVICEBUS_DEDUPLICATION_PROPERTY,
    SERVICEBUS_DEFAULT_SESSION,
)

from ._admin import ATTEMPTS_PROPERTY, RESERVED_PREFIX
from ._tracing import property_name

__all__ = [
    "DEDUPLICATION_ID_PROPERTY",
    "DEFAULT_SESSION",
    "ORIGINAL_ID_PROPERTY",
    "copy_for_retry",
    "delivery_of",
    "message_id_of",
    "outgoing",
    "seconds_until",
]

#: Session of messages sent without an ordering key to a session-enabled entity
#: (Service Bus refuses session-less messages there).
DEFAULT_SESSION = SERVICEBUS_DEFAULT_SESSION
#: The id a copy scheduled by ``nack(delay)`` answers to (its own MessageId must
#: differ, or duplicate detection would drop it).
ORIGINAL_ID_PROPERTY = RESERVED_PREFIX + "id"
#: The ``deduplication_id`` the user gave (see the module docstring).
DEDUPLICATION_ID_PROPERTY = SERVICEBUS_DEDUPLICATION_PROPERTY
#: Service Bus properties read back under a portable name (``None``: dropped).
_SERVICE_PROPERTIES = {"DeadLetterReason": DEAD_LETTER_REASON, "DeadLetterErrorDescription": None}
_UTC = datetime.UTC
#: The message annotation that makes Service Bus hold a message until then (the
#: ``ScheduledEnqueueTimeUtc`` of the service's AMQP mapping).
SCHEDULED_ENQUEUE_TIME_ANNOTATION = b"x-opt-scheduled-enqueue-time"


def outgoing(message: Message, sessions: bool) -> AmqpAnnotatedMessage:
    """The message to send. Built as the AMQP message the SDK would make of a
    ``ServiceBusMessage`` (same sections, so the same bytes on the wire), without going
    through one: its constructor runs a dozen property setters that each list the
    properties' keys, about half of a batched send's CPU in the SDK (profiled at
    5,000 messages; bench/bench_servicebus.py)."""
    session = message.ordering_key or (DEFAULT_SESSION if sessions else None)
    annotations = None
    if message.delay:
        scheduled = datetime.datetime.now(_UTC) + datetime.timedelta(seconds=message.delay)
        annotations = {SCHEDULED_ENQUEUE_TIME_ANNOTATION: scheduled}
    content_type, properties = _properties(message.attributes)
    if message.deduplication_id is not None:
        properties[DEDUPLICATION_ID_PROPERTY] = message.deduplication_id
    return AmqpAnnotatedMessage(
        data_body=message.body,
        properties=AmqpMessageProperties(
            message_id=message.deduplication_id or uuid.uuid4().hex,
            content_type=content_type,
            group_id=session,
        ),
        # The SDK types these str-keyed; its own keys are bytes (as here), and both
        # encode alike.
        application_properties=cast(dict[str, Any] | None, properties or None),
        annotations=cast(dict[str, Any] | None, annotations),
    )


def message_id_of(native: AmqpAnnotatedMessage) -> str:
    """The MessageId :func:`outgoing` gave ``native``."""
    properties = native.properties
    assert properties is not None  # outgoing() always sets them
    return str(properties.message_id)


def _properties(attributes: dict[str, str]) -> tuple[str | None, dict[str | bytes, Any]]:
    """The native content type and the application properties carrying ``attributes``."""
    return attributes.get(CONTENT_TYPE_ATTRIBUTE), {
        property_name(name): value for name, value in attributes.items() if name != CONTENT_TYPE_ATTRIBUTE
    }


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _decoded(value: Any) -> Any:
    """A received property as the SDK's getters give it: UTF-8 text decoded, else as is."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def delivery_of(received: ServiceBusReceivedMessage, lease_deadline: float | None) -> Delivery:
    attributes: dict[str, str] = {}
    carried_attempts, original_id, deduplication_id = 0, None, None
    for raw_name, raw_value in (received.application_properties or {}).items():
        name, value = _text(raw_name), _text(raw_value)
        if name == ATTEMPTS_PROPERTY:
            carried_attempts = int(value)
        elif name == ORIGINAL_ID_PROPERTY:
            original_id = value
        elif name == DEDUPLICATION_ID_PROPERTY:
            deduplication_id = value
        elif name in _SERVICE_PROPERTIES:
            if (portable := _SERVICE_PROPERTIES[name]) is not None:
                attributes[portable] = value
        else:
            attributes[name] = value
    # The AMQP sections are read once, here, rather than through the message's getters
    # (message_id, content_type, session_id, delivery_count): each getter tests the
    # section's truth, which lists its keys, and the four cost ~60 us a message, the
    # largest share of the portable receive path beyond the SDK's own (profiled at 5,000
    # messages; bench/bench_servicebus.py). Same values: a section is never empty.
    raw = received.raw_amqp_message
    properties, header = raw.properties, raw.header
    message_id = content_type = session = None
    if properties is not None:
        message_id = _decoded(properties.message_id)
        content_type = _decoded(properties.content_type)
        session = _decoded(properties.group_id)
    if content_type is not None:
        attributes[CONTENT_TYPE_ATTRIBUTE] = content_type
    body = received.body
    if not isinstance(body, bytes):
        body = b"".join(body)
    delivery_count = header.delivery_count if header is not None else None
    return Delivery(
        token=received,
        id=original_id or str(message_id),
        body=body,
        attributes=attributes,
        delivery_attempt=carried_attempts + (delivery_count or 0) + 1,
        ordering_key=None if session in (None, DEFAULT_SESSION) else session,
        enqueued_at=received.enqueued_time_utc,
        lease_deadline=lease_deadline,
        native=received,
        deduplication_id=deduplication_id,
    )


def copy_for_retry(delivery: Delivery, delay: float) -> ServiceBusMessage:
    """A copy of ``delivery`` due in ``delay`` seconds that keeps its id and attempt count."""
    received: ServiceBusReceivedMessage = delivery.native  # type: ignore[assignment]
    content_type, properties = _properties(delivery.attributes)
    properties.pop(DEAD_LETTER_REASON, None)
    properties[ATTEMPTS_PROPERTY] = str(delivery.delivery_attempt or 1)
    properties[ORIGINAL_ID_PROPERTY] = delivery.id
    if delivery.deduplication_id is not None:
        properties[DEDUPLICATION_ID_PROPERTY] = delivery.deduplication_id
    return ServiceBusMessage(
        delivery.body,
        application_properties=properties,
        content_type=content_type,
        message_id=uuid.uuid4().hex,
        session_id=received.session_id,
        scheduled_enqueue_time_utc=datetime.datetime.now(_UTC) + datetime.timedelta(seconds=delay),
    )


def seconds_until(moment: datetime.datetime | None) -> float | None:
    """``time.monotonic()`` at the UTC ``moment`` (a lock's end), if known."""
    if moment is None:
        return None
    return time.monotonic() + (moment - datetime.datetime.now(_UTC)).total_seconds()
