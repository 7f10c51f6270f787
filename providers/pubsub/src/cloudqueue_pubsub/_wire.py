"""Messages on the wire: the raw body as ``data`` and attributes as Pub/Sub attributes.

Pub/Sub refuses a message with neither data nor attributes, so an empty body without
attributes travels with one marker attribute, removed again on receipt. Nothing else is added:
producers and consumers outside cloudqueue read and write the same messages.
"""

from __future__ import annotations

import datetime
from typing import Any

from cloudqueue.driver import Delivery, Message
from google.pubsub_v1 import PubsubMessage

from ._capabilities import MARKER_PREFIX

__all__ = ["ORIGINAL_ID_MARKER", "Token", "delivery_of", "measure", "to_pubsub"]

_EMPTY_MARKER = MARKER_PREFIX + "empty"
#: Marker on a copy that ``dead_letter()`` published to the dead-letter topic: the message id
#: it had at its source (the copy gets a new one). Removed on receipt like every marker;
#: ``cloudqueue.ops`` reads it from the native message as the dead letter's original id.
ORIGINAL_ID_MARKER = MARKER_PREFIX + "dead_letter_original_id"

# Protobuf framing per message and per attribute in a PublishRequest (tags and varint lengths,
# generously rounded up), so that measured sizes add up to no more than the request size.
_MESSAGE_FRAMING = 16
_ATTRIBUTE_FRAMING = 12


def measure(message: Message) -> int:
    size = len(message.body) + _MESSAGE_FRAMING
    for name, value in message.attributes.items():
        size += len(name.encode()) + len(value.encode()) + _ATTRIBUTE_FRAMING
    if message.ordering_key:
        size += len(message.ordering_key.encode())
    return size


# The raw protobuf class: building it directly costs a fraction of a proto-plus wrapper.
_PB_MESSAGE: Any = PubsubMessage.pb()


def to_pubsub(message: Message) -> Any:
    """The raw ``PubsubMessage`` protobuf for ``message``."""
    attributes = message.attributes
    if not message.body and not attributes:
        attributes = {_EMPTY_MARKER: "1"}
    return _PB_MESSAGE(
        data=message.body, attributes=attributes, ordering_key=message.ordering_key or ""
    )


class Token:
    """The settlement handle of one delivery: its ack id, and the message and its delivery
    attempt (None when unknown) for dead-lettering."""

    __slots__ = ("ack_id", "delivery_attempt", "message")

    def __init__(self, ack_id: str, message: Any, delivery_attempt: int | None = None) -> None:
        self.ack_id = ack_id
        self.message = message
        self.delivery_attempt = delivery_attempt

    def __repr__(self) -> str:
        return f"Token({self.ack_id[:16]!r}...)"


def delivery_of(received: Any, has_attempts: bool, lease_deadline: float) -> Delivery:
    """A ``Delivery`` from a ``ReceivedMessage`` (its protobuf form, read field by field);
    ``lease_deadline`` is the pull's start plus the ack deadline."""
    message = received.message
    attributes = dict(message.attributes)
    if attributes.get(_EMPTY_MARKER) is not None and not message.data:
        del attributes[_EMPTY_MARKER]
    attributes.pop(ORIGINAL_ID_MARKER, None)
    publish_time = message.publish_time
    enqueued_at = None
    if publish_time.seconds or publish_time.nanos:
        enqueued_at = datetime.datetime.fromtimestamp(
            publish_time.seconds + publish_time.nanos / 1e9, tz=datetime.UTC
        )
    # The attempt counter exists only under a dead-letter policy; without one the server
    # sends 0, which means "unknown", not a first delivery.
    attempt = received.delivery_attempt if has_attempts and received.delivery_attempt else None
    return Delivery(
        token=Token(received.ack_id, message, attempt),
        id=message.message_id,
        body=message.data,
        attributes=attributes,
        delivery_attempt=attempt,
        ordering_key=message.ordering_key or None,
        enqueued_at=enqueued_at,
        lease_deadline=lease_deadline,
        native=message,
    )
