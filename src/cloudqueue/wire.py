"""What cloudqueue puts on the wire: reserved attribute names and the SQS text encoding.

Public so that everything reading one cloud agrees on it: the provider plugins, the
serverless adapters, and producers or consumers written without cloudqueue. It imports
no SDK.

Attribute names
---------------

* :data:`RESERVED_PREFIX` (``cloudqueue.``) starts every marker attribute cloudqueue
  adds for itself; readers strip markers, so user code never sees them, and a provider
  that adds markers lists the prefix in ``Limits.reserved_attribute_prefixes`` so user
  attributes cannot collide with them.
* :data:`ENCODING_ATTRIBUTE` (``cloudqueue.encoding``) says how an SQS body was encoded.
* :data:`DEAD_LETTER_REASON` (``dead_letter_reason``) is the attribute a dead letter
  carries with the reason given to ``message.dead_letter(reason)``, on every provider.
  It is not a marker: consumers of the dead-letter destination see and read it.
* :data:`REDRIVE_ATTRIBUTES` are added to a message that ``cloudqueue.ops.redrive`` put
  back from a dead-letter destination: its id there (:data:`REDRIVE_ORIGINAL_ID`), the
  reason it was dead-lettered (:data:`REDRIVE_REASON`), its deliveries before that
  (:data:`REDRIVE_DELIVERY_COUNT`) and when it was redriven (:data:`REDRIVE_TIME`,
  ISO 8601 UTC). Not markers either: consumers see them. A value the redrive does not
  know is left out.

Made-up keys
------------

Some services need ids the user may not give: an SQS FIFO message needs a group and a
deduplication id, a message on a session-enabled Service Bus entity needs a session.
The ones cloudqueue makes up start with :data:`RESERVED_PREFIX`, and readers report
them as None (:func:`own_key`): a received message's ``ordering_key`` and
``deduplication_id`` are the user's or None. On Service Bus the user's deduplication id
also travels in the application property :data:`SERVICEBUS_DEDUPLICATION_PROPERTY`
(MessageIds cannot tell it from a made-up one); keyless messages on session-enabled
entities share the session :data:`SERVICEBUS_DEFAULT_SESSION`.

Body encoding on SQS
--------------------

SQS carries text only: a body must be non-empty and made of the XML characters
``#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF``. cloudqueue bodies are
bytes, so the SQS driver and the AWS Lambda adapter must agree on one rule, written
here once:

* a body that is valid UTF-8 *and* text SQS accepts travels as that text, unmarked;
* anything else (non-UTF-8 bytes, control characters) travels as standard base64
  with the String message attribute ``cloudqueue.encoding = base64``;
* the empty body, whose base64 would be the empty text SQS refuses, travels as the
  placeholder text ``-`` with ``cloudqueue.encoding = empty``.

A message sent by a foreign producer carries no marker and is read as its UTF-8 text,
unchanged.

Attribute *values* follow the same character rules and may not be empty either, so a
value SQS would refuse travels with a custom String data type naming its encoding
(:data:`BASE64_TYPE`, :data:`EMPTY_TYPE`); other readers still see a String attribute.

SNS notification envelopes
--------------------------

An SNS topic publishes the same encoded text and attributes (so the SQS rules above
hold end to end). A subscription with raw message delivery hands them over unchanged;
without it, and to a Lambda SNS trigger, SNS wraps them in a JSON notification
(``Type``, ``MessageId``, ``TopicArn``, ``Message``, ``MessageAttributes`` as
``{"Type", "Value"}``, ...). :func:`sns_notification` reads that envelope;
:func:`sns_attribute_text` reads one of its attributes as :func:`sqs_attribute_text`
reads an SQS one.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BASE64",
    "BASE64_TYPE",
    "CONTENT_TYPE_ATTRIBUTE",
    "DEAD_LETTER_REASON",
    "EMPTY",
    "EMPTY_PLACEHOLDER",
    "EMPTY_TYPE",
    "ENCODING_ATTRIBUTE",
    "MESSAGE_ID_ATTRIBUTE",
    "PAYLOAD_ATTRIBUTE",
    "REDRIVE_ATTRIBUTES",
    "REDRIVE_DELIVERY_COUNT",
    "REDRIVE_ORIGINAL_ID",
    "REDRIVE_REASON",
    "REDRIVE_TIME",
    "RESERVED_PREFIX",
    "SERVICEBUS_DEDUPLICATION_PROPERTY",
    "SERVICEBUS_DEFAULT_SESSION",
    "SnsNotification",
    "WireDecodeError",
    "decode_sqs_body",
    "encode_sqs_attribute",
    "encode_sqs_body",
    "encoded_sqs_size",
    "is_sqs_text",
    "own_key",
    "sns_attribute_text",
    "sns_notification",
    "sqs_attribute_text",
    "user_attributes",
]

#: Attribute prefix reserved for cloudqueue's own markers (stripped before user code sees them).
RESERVED_PREFIX = "cloudqueue."
#: Service Bus application property carrying the user's deduplication id.
SERVICEBUS_DEDUPLICATION_PROPERTY = RESERVED_PREFIX + "deduplication_id"
#: Service Bus session of keyless messages on session-enabled entities.
SERVICEBUS_DEFAULT_SESSION = RESERVED_PREFIX + "default"
#: Attribute a dead letter carries with the reason given to ``dead_letter(reason)``
#: (Service Bus keeps the reason in its native ``DeadLetterReason``, read back under this name).
DEAD_LETTER_REASON = "dead_letter_reason"
#: Attribute naming the body's media type (``application/json``...), set by codecs and
#: read to choose a decoder. Not a marker: the same name as Google's Pub/Sub CloudEvents
#: binding uses, visible to consumers. Where the transport has a native content type
#: (Service Bus, AMQP 0.9.1) the driver carries it there and reads it back under this name.
CONTENT_TYPE_ATTRIBUTE = "content-type"
#: Provenance of a redriven message (see the module docstring). Underscored names are
#: valid attribute names on every provider and in Service Bus SQL filters unbracketed.
REDRIVE_ORIGINAL_ID = "redrive_original_id"
REDRIVE_REASON = "redrive_reason"
REDRIVE_DELIVERY_COUNT = "redrive_delivery_count"
REDRIVE_TIME = "redrive_time"
REDRIVE_ATTRIBUTES = (REDRIVE_ORIGINAL_ID, REDRIVE_REASON, REDRIVE_DELIVERY_COUNT, REDRIVE_TIME)
#: Message attribute carrying the id ``send`` returned, for transports that do not keep
#: the sender's id to the receiver: an SNS topic delivers to an SQS queue (raw delivery)
#: under a new SQS message id. A message carrying it reports it as its id wherever it is
#: read; the transport's own id still settles it (e.g. a Lambda batchItemFailures entry).
MESSAGE_ID_ATTRIBUTE = RESERVED_PREFIX + "id"
#: Message attribute marking a claim check (:mod:`cloudqueue.offload`): the body is a
#: pointer to the payload, whose length in bytes is the value. Drivers hand it up with
#: the user's attributes (:func:`user_attributes` keeps it): the offload layer above
#: them reads and removes it, on every provider alike.
PAYLOAD_ATTRIBUTE = RESERVED_PREFIX + "payload"
#: Message attribute naming how the body was encoded; absent means "plain text".
ENCODING_ATTRIBUTE = "cloudqueue.encoding"
#: Marker value: the body text is standard base64 of the body bytes.
BASE64 = "base64"
#: Marker value: the body is ``b""``; the text is the placeholder :data:`EMPTY_PLACEHOLDER`.
EMPTY = "empty"
#: The body text standing for the empty body (SQS refuses an empty body).
EMPTY_PLACEHOLDER = "-"

#: Data type of an attribute whose value is the base64 of its UTF-8 text.
BASE64_TYPE = "String.cloudqueue.base64"
#: Data type of an attribute whose value is the empty string (sent as the placeholder).
EMPTY_TYPE = "String.cloudqueue.empty"

# One character outside the set SQS accepts (lone surrogates cannot occur: bodies are
# decoded from bytes with strict UTF-8 first).
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class WireDecodeError(ValueError):
    """A message carries a cloudqueue marker whose content cannot be decoded."""


def own_key(value: str | None) -> str | None:
    """An ordering key or deduplication id as the user gave it: None for an empty one and
    for one cloudqueue made up (see "Made-up keys" above)."""
    if not value or value.startswith(RESERVED_PREFIX):
        return None
    return value


def is_sqs_text(text: str) -> bool:
    """True when SQS accepts ``text`` as a message body verbatim (non-empty, XML chars)."""
    return bool(text) and _NOT_SQS_TEXT.search(text) is None


def _sqs_body_text(body: bytes) -> str | None:
    """``body`` as text SQS accepts verbatim, or None when it must be encoded."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if is_sqs_text(text) else None


def encode_sqs_body(body: bytes) -> tuple[str, dict[str, str]]:
    """The SQS body text for ``body`` and the marker attributes to send with it.

    The returned dict is empty for plain text and ``{ENCODING_ATTRIBUTE: BASE64 or EMPTY}``
    otherwise; the caller adds it (as String attributes) to the user's attributes.
    """
    if not body:
        return EMPTY_PLACEHOLDER, {ENCODING_ATTRIBUTE: EMPTY}
    text = _sqs_body_text(body)
    if text is not None:
        return text, {}
    return base64.b64encode(body).decode("ascii"), {ENCODING_ATTRIBUTE: BASE64}


def _marker_size(value: str) -> int:
    # SQS counts name, data type ("String") and value of each attribute.
    return len(ENCODING_ATTRIBUTE) + len("String") + len(value)


def encoded_sqs_size(body: bytes) -> int:
    """Bytes ``body`` occupies on the SQS wire, marker attribute included (computed, not
    encoded: measuring a large binary body must not cost its base64)."""
    if not body:
        return len(EMPTY_PLACEHOLDER) + _marker_size(EMPTY)
    if _sqs_body_text(body) is not None:
        return len(body)  # sent as the same UTF-8 bytes
    return 4 * ((len(body) + 2) // 3) + _marker_size(BASE64)


def decode_sqs_body(text: str, attributes: Mapping[str, str]) -> bytes:
    """The original body bytes of an SQS message, given its body text and string attributes.

    Raises :class:`WireDecodeError` for an unknown encoding or invalid base64, so a
    corrupt message is reported instead of handed over as garbage.
    """
    encoding = attributes.get(ENCODING_ATTRIBUTE)
    if encoding is None:
        return text.encode("utf-8")
    if encoding == EMPTY:
        return b""
    if encoding != BASE64:
        raise WireDecodeError(
            f"message attribute {ENCODING_ATTRIBUTE!r} is {encoding!r}; "
            f"known values are {BASE64!r} and {EMPTY!r}"
        )
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise WireDecodeError(
            f"message marked {ENCODING_ATTRIBUTE}={BASE64} has a body that is not valid base64"
        ) from exc


def user_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """``attributes`` without the markers drivers consume (what reaches the portable
    layer); :data:`PAYLOAD_ATTRIBUTE` stays for the offload layer."""
    return {
        name: value for name, value in attributes.items()
        if not name.startswith(RESERVED_PREFIX) or name == PAYLOAD_ATTRIBUTE
    }


def encode_sqs_attribute(value: str) -> tuple[str, str]:
    """The SQS data type and string value that carry the portable attribute ``value``."""
    if is_sqs_text(value):
        return "String", value
    if not value:
        return EMPTY_TYPE, EMPTY_PLACEHOLDER
    return BASE64_TYPE, base64.b64encode(value.encode()).decode("ascii")


def sqs_attribute_text(data_type: str, string_value: str | None, binary_value: bytes | str | None) -> str:
    """One SQS message attribute as the portable ``str`` value.

    Our own encoded types (:func:`encode_sqs_attribute`) are decoded. ``String`` and
    ``Number`` (and other custom ``String.x``/``Number.x`` types) give their string
    value. ``Binary`` gives standard base64 text: boto3 hands the value as bytes and a
    Lambda event as base64 text already, and both end up identical. Raises
    :class:`WireDecodeError` for a value marked base64 that is not.
    """
    if data_type == EMPTY_TYPE:
        return ""
    if data_type == BASE64_TYPE:
        try:
            return base64.b64decode(string_value or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise WireDecodeError(f"an attribute of type {BASE64_TYPE} is not base64 of UTF-8") from exc
    if data_type.split(".", 1)[0] == "Binary":
        if binary_value is None:
            return ""
        if isinstance(binary_value, str):
            return binary_value
        return base64.b64encode(binary_value).decode("ascii")
    return string_value if string_value is not None else ""


@dataclass(frozen=True, slots=True)
class SnsNotification:
    """An SNS notification envelope, read by :func:`sns_notification`."""

    #: The SNS ``MessageId``.
    message_id: str
    topic_arn: str
    #: ``Message`` as published: the encoded body text (decode with :func:`decode_sqs_body`).
    message: str
    #: ``MessageAttributes`` as portable ``str`` values, markers kept (as the SQS
    #: readers' attributes before :func:`user_attributes`).
    attributes: dict[str, str]
    timestamp: datetime.datetime | None
    subject: str | None


#: The fields that make a JSON object an SNS notification (anything else is left alone:
#: an application body may be JSON with a "Type" of its own).
_SNS_IDENTITY = ("MessageId", "TopicArn", "Message")


def sns_notification(text: str) -> SnsNotification | None:
    """The SNS notification envelope in ``text`` (an SQS body when raw delivery is off, or a
    Lambda SNS record's ``Sns`` object dumped), or None when it is not one (not JSON, or no
    ``"Type": "Notification"`` with ``TopicArn``/``MessageId``/``Message``). Raises
    :class:`WireDecodeError` when it is one but malformed (a field of the wrong type, an
    attribute without ``Type``/``Value``), naming the field."""
    if not text.lstrip().startswith("{"):
        return None  # cheap exit for the common case: a body that is no JSON object
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than json parses
        return None
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        return None
    if any(field not in envelope for field in _SNS_IDENTITY):
        return None
    return SnsNotification(
        message_id=_envelope_text(envelope, "MessageId"),
        topic_arn=_envelope_text(envelope, "TopicArn"),
        message=_envelope_text(envelope, "Message"),
        attributes=_envelope_attributes(envelope.get("MessageAttributes")),
        timestamp=_envelope_timestamp(_envelope_optional_text(envelope, "Timestamp")),
        subject=_envelope_optional_text(envelope, "Subject"),
    )


def sns_attribute_text(data_type: str, value: str) -> str:
    """One ``{"Type", "Value"}`` envelope attribute as the portable ``str``: Binary stays
    base64 text, our ``String.cloudqueue.*`` types are decoded, as :func:`sqs_attribute_text`
    does (raising :class:`WireDecodeError` for a value marked base64 that is not)."""
    return sqs_attribute_text(data_type, value, value)


def _envelope_text(envelope: Mapping[str, object], field: str) -> str:
    value = envelope[field]
    if not isinstance(value, str):
        raise WireDecodeError(
            f"SNS notification field {field!r} must be a string, not {type(value).__name__}"
        )
    return value


def _envelope_optional_text(envelope: Mapping[str, object], field: str) -> str | None:
    # Lambda SNS events carry "Subject": null for a message published without one.
    return None if envelope.get(field) is None else _envelope_text(envelope, field)


def _envelope_attributes(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WireDecodeError(
            f"SNS notification field 'MessageAttributes' must be an object, not {type(raw).__name__}"
        )
    attributes: dict[str, str] = {}
    for name, typed in raw.items():
        if not isinstance(typed, dict):
            raise WireDecodeError(f"SNS message attribute {name!r} must be an object with Type and Value")
        data_type, value = typed.get("Type"), typed.get("Value")
        if not isinstance(data_type, str) or not isinstance(value, str):
            raise WireDecodeError(f"SNS message attribute {name!r} needs string 'Type' and 'Value'")
        attributes[name] = sns_attribute_text(data_type, value)
    return attributes


def _envelope_timestamp(raw: str | None) -> datetime.datetime | None:
    if raw is None:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(raw)  # ISO 8601 with "Z" (Python 3.11+)
    except ValueError:
        raise WireDecodeError(f"SNS notification field 'Timestamp' is not ISO 8601: {raw!r}") from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=datetime.UTC)
