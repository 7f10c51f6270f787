"""CloudEvents on a queue message: which binding a scheme speaks, and the two content modes.

A message here is a body and a map of string attributes (what every cloudqueue provider
carries), so each binding is a naming rule for the attributes:

* AMQP (``azuresb``, ``amqp``): binary mode puts each context attribute in an application
  property ``cloudEvents_<name>`` and ``datacontenttype`` in the message's content type,
  which the drivers carry as the attribute ``content-type`` and move to the native field.
  Receiving also accepts the binding's other prefix, ``cloudEvents:``, and a ``time`` sent
  as an AMQP timestamp (milliseconds since the epoch, as the ``cloudevents`` SDK writes it).
* Google's Pub/Sub binding (``pubsub``): ``ce-<name>`` attributes, ``content-type``.
* Every other scheme (``sqs``, ``sns``, ``memory``, ``sqlite``, third-party plugins): no
  binding exists; binary mode uses the Pub/Sub naming (``ce-<name>``, ``content-type``).

Structured mode is the same everywhere: the JSON event format as the body, content type
``application/cloudevents+json``. Decoding needs no scheme: a content type starting with
``application/cloudevents`` means structured, else the ``specversion`` attribute under
either prefix means binary.
"""

from __future__ import annotations

import base64
import datetime
import enum
import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from cloudevents.core.base import BaseCloudEvent, EventFactory
from cloudevents.core.bindings.common import get_event_factory_for_version
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from ..errors import DecodeError, InvalidArgument
from ..wire import CONTENT_TYPE_ATTRIBUTE

__all__ = [
    "AMQP_PREFIX",
    "AMQP_PREFIX_COLON",
    "CE_PREFIX",
    "STRUCTURED_CONTENT_TYPE",
    "Binding",
    "Mode",
    "binding_for",
    "decode",
    "default_mode",
    "encode",
    "is_cloudevent",
]

#: Application-property prefix of the AMQP binding (the one the binding prefers).
AMQP_PREFIX: Final = "cloudEvents_"
#: The AMQP binding's other prefix, accepted on receive.
AMQP_PREFIX_COLON: Final = "cloudEvents:"
#: Attribute prefix of Google's Pub/Sub binding, used by schemes without a binding too.
CE_PREFIX: Final = "ce-"
#: Content type of structured mode with the JSON event format.
STRUCTURED_CONTENT_TYPE: Final = JSONFormat.CONTENT_TYPE

Mode = Literal["structured", "binary"]
_MODES: Final = ("structured", "binary")
_FORMAT: Final = JSONFormat()


class Binding(enum.Enum):
    """The attribute naming a scheme's messages follow in binary mode."""

    AMQP = "amqp"
    PUBSUB = "pubsub"
    #: No binding exists for the transport: Pub/Sub's naming, documented as ours.
    ATTRIBUTES = "attributes"

    @property
    def prefix(self) -> str:
        return AMQP_PREFIX if self is Binding.AMQP else CE_PREFIX


_BINDINGS: Final = {"azuresb": Binding.AMQP, "amqp": Binding.AMQP, "amqps": Binding.AMQP,
                    "pubsub": Binding.PUBSUB}


def binding_for(scheme: str) -> Binding:
    """The binding of ``scheme`` (a URL scheme such as ``pubsub``, or a whole URL)."""
    return _BINDINGS.get(_scheme_of(scheme), Binding.ATTRIBUTES)


def default_mode(scheme: str) -> Mode:
    """Binary where the transport has a binding (the event's attributes stay readable
    by filters and other consumers), structured elsewhere (one attribute, so SQS's
    budget of ten stays the user's)."""
    return "binary" if binding_for(scheme) is not Binding.ATTRIBUTES else "structured"


def _scheme_of(scheme: str) -> str:
    if not isinstance(scheme, str) or not scheme:
        raise InvalidArgument(f"scheme must be a provider URL scheme such as 'pubsub', not {scheme!r}")
    return scheme.split("://", 1)[0].lower()


def checked_mode(mode: object) -> Mode | None:
    if mode is None or mode in _MODES:
        return mode
    raise InvalidArgument(f"CloudEvents mode must be 'structured' or 'binary', not {mode!r}")


# -- encoding -------------------------------------------------------------------------


def encode(event: BaseCloudEvent, scheme: str, mode: Mode | None) -> tuple[bytes, dict[str, str]]:
    """The body and attributes carrying ``event`` on ``scheme``'s transport."""
    if not callable(getattr(event, "get_attributes", None)) or not callable(getattr(event, "get_data", None)):
        raise InvalidArgument(
            f"expected a CloudEvent (cloudevents.core.v1.event.CloudEvent), not {type(event).__name__}"
        )
    mode = checked_mode(mode) or default_mode(scheme)
    if mode == "structured":
        return _FORMAT.write(event), {CONTENT_TYPE_ATTRIBUTE: STRUCTURED_CONTENT_TYPE}
    prefix = binding_for(scheme).prefix
    attributes: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if name == "datacontenttype":
            attributes[CONTENT_TYPE_ATTRIBUTE] = str(value)
        else:
            attributes[prefix + name] = _canonical(value)
    body = _FORMAT.write_data(event.get_data(), event.get_datacontenttype())
    return body, attributes


def _canonical(value: Any) -> str:
    """The CloudEvents canonical string of an attribute value (spec, "Type System")."""
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


# -- decoding -------------------------------------------------------------------------


def is_cloudevent(attributes: Mapping[str, str]) -> bool:
    """Whether a message with these attributes carries a CloudEvent, in either mode."""
    return _is_structured(attributes) or _binary_prefix(attributes) is not None


def _is_structured(attributes: Mapping[str, str]) -> bool:
    return attributes.get(CONTENT_TYPE_ATTRIBUTE, "").strip().lower().startswith("application/cloudevents")


def _binary_prefix(attributes: Mapping[str, str]) -> str | None:
    for prefix in (AMQP_PREFIX, AMQP_PREFIX_COLON, CE_PREFIX):
        if prefix + "specversion" in attributes:
            return prefix
    return None


def decode(body: bytes, attributes: Mapping[str, str], factory: EventFactory | None = None) -> BaseCloudEvent:
    """The CloudEvent a message carries; :class:`~cloudqueue.errors.DecodeError` naming
    what is missing or malformed when it carries none."""
    try:
        if _is_structured(attributes):
            return _structured(body, attributes[CONTENT_TYPE_ATTRIBUTE], factory)
        prefix = _binary_prefix(attributes)
        if prefix is None:
            raise DecodeError(
                "the message is not a CloudEvent: its content-type is not application/cloudevents+json "
                f"and it has no {CE_PREFIX}specversion or {AMQP_PREFIX}specversion attribute",
                kind=factory,
            )
        return _binary(body, attributes, prefix, factory)
    except BaseCloudEventException as error:
        raise DecodeError(f"invalid CloudEvent: {error}", kind=factory) from None


def _structured(body: bytes, content_type: str, factory: EventFactory | None) -> BaseCloudEvent:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != STRUCTURED_CONTENT_TYPE:
        raise DecodeError(
            f"structured CloudEvent in {media_type!r}: only the JSON event format "
            f"({STRUCTURED_CONTENT_TYPE}) is supported", kind=factory,
        )
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DecodeError(f"structured CloudEvent body is not JSON: {error}", kind=factory) from None
    if not isinstance(document, dict):
        raise DecodeError("structured CloudEvent body must be a JSON object", kind=factory)
    time = document.get("time")
    if time is not None and not isinstance(time, str):
        raise DecodeError(f"CloudEvent attribute 'time' must be an RFC 3339 string, not {time!r}",
                          kind=factory)
    if time is not None:
        _parsed_time(time, factory)  # a clear error before the SDK's own parse
    try:
        return _FORMAT.read(factory, body)
    except (ValueError, TypeError) as error:
        raise DecodeError(f"invalid structured CloudEvent: {error}", kind=factory) from None


def _binary(
    body: bytes, attributes: Mapping[str, str], prefix: str, factory: EventFactory | None
) -> BaseCloudEvent:
    amqp = prefix != CE_PREFIX
    context: dict[str, Any] = {}
    for key, value in attributes.items():
        name = _attribute_name(key, amqp)
        if name is None or name == "datacontenttype":
            continue
        context[name] = _timestamp(value, amqp, factory) if name == "time" else value
    if CONTENT_TYPE_ATTRIBUTE in attributes:
        context["datacontenttype"] = attributes[CONTENT_TYPE_ATTRIBUTE]
    if factory is None:
        factory = get_event_factory_for_version(str(context.get("specversion", "")))
    data = _FORMAT.read_data(body, context.get("datacontenttype"))
    return factory(context, data)


def _attribute_name(key: str, amqp: bool) -> str | None:
    prefixes = (AMQP_PREFIX, AMQP_PREFIX_COLON) if amqp else (CE_PREFIX,)
    for prefix in prefixes:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix):]
    return None


def _timestamp(value: str, amqp: bool, factory: EventFactory | None) -> datetime.datetime:
    # The AMQP binding allows a native timestamp; SDKs write it as milliseconds since
    # the epoch, which the Service Bus driver reads back as text.
    if amqp and value.isdigit():
        return datetime.datetime.fromtimestamp(int(value) / 1000, tz=datetime.UTC)
    return _parsed_time(value, factory)


def _parsed_time(value: str, factory: EventFactory | None) -> datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise DecodeError(f"CloudEvent attribute 'time' is not an RFC 3339 timestamp: {value!r}",
                          kind=factory) from None
    if parsed.tzinfo is None:
        raise DecodeError(f"CloudEvent attribute 'time' has no time zone offset: {value!r}", kind=factory)
    return parsed
