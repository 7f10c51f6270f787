"""Messages to SQS request entries and SQS messages to deliveries (no I/O).

Bodies and attribute values follow the wire contract of :mod:`cloudqueue.wire` (plain
text when SQS accepts it, else an encoding the reader undoes), shared with the AWS
Lambda adapter.

Made-up ids. Every message on a FIFO queue needs a ``MessageGroupId`` and a
``MessageDeduplicationId``, and a received message reports the ones it had; but it must
report the user's ``ordering_key`` and ``deduplication_id``, and None when the user gave
none. So every id this codec makes up starts with :data:`MADE_UP_PREFIX`
(``cloudqueue.``, the prefix already reserved for cloudqueue's own markers), and the FIFO
limits reserve it (``Limits.reserved_key_prefixes``): the portable layer refuses a
user's key or id starting with it before anything is sent. That is exact, costs nothing
on the wire and needs no attribute (SQS allows only 10, the user's included). The
made-up ids keep their meaning:

- no ordering key: the prefix and a random uuid as the group (each message is its own
  group: unordered, like a keyless message elsewhere).
- no ``deduplication_id`` on a queue declared ``deduplicated``: the prefix and the
  SHA-256 of the body as sent. SQS's content-based deduplication hashes exactly that,
  so repeats are dropped as before; we just compute the id ourselves instead of
  letting SQS compute one we could not tell from a user's.
- otherwise: the prefix and a random uuid (each message is its own).
- a dead-letter copy (see ``_driver``): the prefix and the source message id, so a
  retried dead-lettering is dropped as a repeat. The copy therefore reports None.

Messages sent by other clients to a content-based queue without an id carry SQS's own
hash: it cannot be told from a user's id and is reported as it is; likewise their
group ids.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any

from cloudqueue import wire
from cloudqueue.driver import Message

__all__ = [
    "MADE_UP_PREFIX",
    "ORIGINAL_ID_MARKER",
    "RECEIVE_COUNT_MARKER",
    "decode_attributes",
    "decode_body",
    "deduplication_id",
    "encode_attribute",
    "encode_entry",
    "encode_publish_entry",
    "enqueued_at",
    "made_up",
    "measure",
    "measure_published",
    "message_id",
    "ordering_key",
]

log = logging.getLogger("cloudqueue.sqs")

_STRING = "String"

#: Marker on a copy sent to the dead-letter queue by ``dead_letter()``: the message id it
#: had in its source queue (the copy gets a new one).
ORIGINAL_ID_MARKER = wire.RESERVED_PREFIX + "dead_letter_original_id"
#: Marker on such a copy: the ApproximateReceiveCount it had when it was dead-lettered
#: (the copy's own count starts again at 0).
RECEIVE_COUNT_MARKER = wire.RESERVED_PREFIX + "dead_letter_receive_count"
#: Start of every ``MessageDeduplicationId`` cloudqueue makes up (see the module docstring).
MADE_UP_PREFIX = wire.RESERVED_PREFIX


def encode_attribute(value: str) -> dict[str, str]:
    """One SQS ``MessageAttributeValue`` for a portable string value."""
    data_type, text = wire.encode_sqs_attribute(value)
    return {"DataType": data_type, "StringValue": text}


def _wire_size(name: str, value: Mapping[str, str]) -> int:
    # SQS counts each attribute's name, data type and value against the message size.
    return len(name.encode()) + len(value["DataType"]) + len(value["StringValue"].encode())


def measure(message: Message) -> int:
    """Bytes ``message`` occupies on the SQS wire: encoded body, markers and attributes."""
    size = wire.encoded_sqs_size(message.body)
    for name, value in message.attributes.items():
        size += _wire_size(name, encode_attribute(value))
    return size


def encode_entry(
    entry_id: str, message: Message, *, fifo: bool, content_based_dedup: bool
) -> dict[str, Any]:
    """A ``SendMessageBatch`` entry for a message already validated against the limits."""
    text, markers = wire.encode_sqs_body(message.body)
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": text}
    if message.attributes or markers:
        attributes = {name: encode_attribute(value) for name, value in message.attributes.items()}
        for name, value in markers.items():
            attributes[name] = {"DataType": _STRING, "StringValue": value}
        entry["MessageAttributes"] = attributes
    if fifo:
        # Every FIFO message needs a group. Without an ordering key each message gets its
        # own group: unordered, like a keyless message elsewhere, and never blocked behind
        # another message's retries.
        entry["MessageGroupId"] = message.ordering_key or made_up(uuid.uuid4().hex)
        if message.deduplication_id is not None:
            entry["MessageDeduplicationId"] = message.deduplication_id
        elif content_based_dedup:
            digest = hashlib.sha256(text.encode()).hexdigest()
            entry["MessageDeduplicationId"] = made_up("body-" + digest)
        else:
            entry["MessageDeduplicationId"] = made_up(uuid.uuid4().hex)
    elif message.delay:
        # DelaySeconds is whole seconds; round up so a message never comes early.
        entry["DelaySeconds"] = math.ceil(message.delay)
    return entry


def _id_attribute_size(message_id: str) -> int:
    return len(wire.MESSAGE_ID_ATTRIBUTE) + len(_STRING) + len(message_id.encode())


#: A fresh id is uuid4 hex: 32 characters, always.
_ID_LENGTH = 32


def measure_published(message: Message) -> int:
    """Bytes ``message`` occupies in an SNS publish: as on SQS, plus the id attribute."""
    return measure(message) + _id_attribute_size("0" * _ID_LENGTH)


def encode_publish_entry(
    entry_id: str, message: Message, *, fifo: bool, content_based_dedup: bool, message_id: str
) -> dict[str, Any]:
    """A ``PublishBatch`` entry: the SQS entry's body and attributes exactly (raw delivery
    hands them to the queue unchanged), plus ``message_id`` in
    :data:`cloudqueue.wire.MESSAGE_ID_ATTRIBUTE` (the queue's copy gets an SQS id of its own)."""
    entry = encode_entry(entry_id, message, fifo=fifo, content_based_dedup=content_based_dedup)
    entry["Message"] = entry.pop("MessageBody")
    attributes = entry.setdefault("MessageAttributes", {})
    attributes[wire.MESSAGE_ID_ATTRIBUTE] = {"DataType": _STRING, "StringValue": message_id}
    return entry


def message_id(native_id: str, attributes: Mapping[str, str]) -> str:
    """The id a received message reports: the one its sender returned when it carried one
    (:data:`cloudqueue.wire.MESSAGE_ID_ATTRIBUTE`), else the transport's own."""
    return attributes.get(wire.MESSAGE_ID_ATTRIBUTE) or native_id


def made_up(unique: str) -> str:
    """A group or deduplication id that a received message reports as None."""
    return MADE_UP_PREFIX + unique


def deduplication_id(system: Mapping[str, str]) -> str | None:
    """The user's deduplication id from a message's system attributes; None for one
    cloudqueue made up, and on standard queues (which have none)."""
    return wire.own_key(system.get("MessageDeduplicationId"))


def ordering_key(system: Mapping[str, str]) -> str | None:
    """The user's ordering key (the message group) from a message's system attributes;
    None for a group cloudqueue made up, and on standard queues."""
    return wire.own_key(system.get("MessageGroupId"))


def decode_attributes(raw: Mapping[str, Mapping[str, Any]] | None) -> dict[str, str]:
    """Every SQS message attribute as a portable string (markers included)."""
    if not raw:
        return {}
    out: dict[str, str] = {}
    for name, value in raw.items():
        data_type = str(value.get("DataType", _STRING))
        try:
            out[name] = wire.sqs_attribute_text(
                data_type, value.get("StringValue"), value.get("BinaryValue")
            )
        except wire.WireDecodeError:
            log.warning("attribute %r is marked base64 but is not; kept as sent", name)
            out[name] = str(value.get("StringValue", ""))
    return out


def decode_body(text: str, attributes: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The original body bytes and the user's attributes (markers removed).

    A message whose marker cannot be decoded is handed over as its raw text with the
    marker kept, and logged: raising would stall the queue on one corrupt message.
    """
    try:
        body = wire.decode_sqs_body(text, attributes)
    except wire.WireDecodeError as error:
        log.warning("cannot decode an SQS message body (%s); handing over the raw text", error)
        return text.encode(), attributes
    if any(name.startswith(wire.RESERVED_PREFIX) for name in attributes):
        attributes = wire.user_attributes(attributes)
    return body, attributes


def enqueued_at(system: Mapping[str, str]) -> datetime.datetime | None:
    """``SentTimestamp`` (epoch milliseconds) as an aware UTC datetime."""
    stamp = system.get("SentTimestamp")
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(int(stamp) / 1000.0, datetime.UTC)
