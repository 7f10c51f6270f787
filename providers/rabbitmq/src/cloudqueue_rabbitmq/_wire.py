"""cloudqueue messages to AMQP 0.9.1 messages and back: the raw body, attributes as
headers, no envelope, so producers and consumers outside cloudqueue interoperate.

* Attributes travel as string headers, except ``content-type``
  (:data:`cloudqueue.wire.CONTENT_TYPE_ATTRIBUTE`), which travels in the native
  ``content_type`` basic property and comes back as that attribute.
* Headers starting ``x-`` are the broker's (``x-delivery-count``, ``x-death``,
  ``x-first-death-*``): they are read, never handed up as attributes, and a user attribute
  may not start with it.
* ``delivery_attempt`` is the quorum queue's ``x-delivery-count`` (returns so far) + 1,
  plus, on a copy that ``nack(delay)`` republished, the deliveries before the copy, carried
  in the header :data:`PRIOR_DELIVERIES_HEADER` (never handed up as an attribute).
* Every message is persistent (delivery mode 2) and carries a ``message_id``: the id
  cloudqueue reports. A foreign message without one is given a stable id from its body
  and headers.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Mapping

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from cloudqueue.driver import Message
from cloudqueue.wire import CONTENT_TYPE_ATTRIBUTE, RESERVED_PREFIX

__all__ = [
    "BROKER_HEADER_PREFIX",
    "DELIVERY_COUNT_HEADER",
    "PRIOR_DELIVERIES_HEADER",
    "attributes_of",
    "delivery_attempt_of",
    "message_id_of",
    "outgoing",
    "prior_deliveries_of",
]

BROKER_HEADER_PREFIX = "x-"
DELIVERY_COUNT_HEADER = "x-delivery-count"
#: On a copy republished by ``nack(delay)``: how many deliveries the message had before it.
PRIOR_DELIVERIES_HEADER = RESERVED_PREFIX + "prior-deliveries"


def outgoing(message: Message, message_id: str | None = None) -> aio_pika.Message:
    attributes = message.attributes
    headers: dict[str, aio_pika.abc.FieldValue] = {
        name: value for name, value in attributes.items() if name != CONTENT_TYPE_ATTRIBUTE
    }
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=attributes.get(CONTENT_TYPE_ATTRIBUTE),
        message_id=message_id or uuid.uuid4().hex,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=datetime.datetime.now(datetime.UTC),
    )


def copy_of(incoming: AbstractIncomingMessage, extra: Mapping[str, str]) -> aio_pika.Message:
    """A new message with the body, user attributes and id of ``incoming``, plus ``extra``."""
    attributes = {**attributes_of(incoming), **extra}
    return outgoing(Message(incoming.body, attributes=attributes), message_id_of(incoming))


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def attributes_of(incoming: AbstractIncomingMessage) -> dict[str, str]:
    attributes = {
        name: _text(value)
        for name, value in (incoming.headers or {}).items()
        if not name.startswith(BROKER_HEADER_PREFIX) and name != PRIOR_DELIVERIES_HEADER
    }
    if incoming.content_type is not None:
        attributes[CONTENT_TYPE_ATTRIBUTE] = incoming.content_type
    return attributes


def _count(incoming: AbstractIncomingMessage, header: str) -> int:
    value = (incoming.headers or {}).get(header)
    if isinstance(value, bytes | bytearray | str):  # a string header from a foreign copier
        value = _text(value)
        return int(value) if value.isdigit() else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def prior_deliveries_of(incoming: AbstractIncomingMessage) -> int:
    return _count(incoming, PRIOR_DELIVERIES_HEADER)


def delivery_attempt_of(incoming: AbstractIncomingMessage) -> int:
    return prior_deliveries_of(incoming) + _count(incoming, DELIVERY_COUNT_HEADER) + 1


def message_id_of(incoming: AbstractIncomingMessage) -> str:
    if incoming.message_id:
        return incoming.message_id
    digest = hashlib.sha256(incoming.body)
    for name, value in sorted((incoming.headers or {}).items()):
        if not name.startswith(BROKER_HEADER_PREFIX):
            digest.update(f"{name}={_text(value)}".encode())
    return "sha256:" + digest.hexdigest()[:32]
