"""CloudEvents as a :class:`~cloudqueue.codecs.Codec`, and the plain helpers around it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from .._message import Message
from ..codecs import Codec
from ._bindings import Mode, checked_mode, decode, encode

__all__ = ["CloudEventCodec", "from_received", "to_message"]

T = TypeVar("T")


class _Carrier(Protocol):
    """What :func:`from_received` reads: a received message of either API, or a Message."""

    @property
    def body(self) -> bytes: ...

    @property
    def attributes(self) -> Mapping[str, str]: ...


class CloudEventCodec(Codec):
    """Sends a CloudEvent in ``mode`` (``"structured"`` or ``"binary"``; None: binary where
    the transport has a binding, Service Bus and Pub/Sub, structured elsewhere) by the
    binding of the producer's scheme, and decodes either mode of any binding."""

    def __init__(self, mode: Mode | None = None) -> None:
        self.mode = checked_mode(mode)

    def __repr__(self) -> str:
        return f"CloudEventCodec(mode={self.mode!r})"

    def handles(self, kind: object) -> bool:
        return kind is BaseCloudEvent or (isinstance(kind, type) and issubclass(kind, CloudEvent))

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        return encode(value, scheme, self.mode)  # type: ignore[arg-type]  # checked there

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        # A subclass of the SDK's CloudEvent is built as itself; anything else (the
        # protocol) as the class of the event's specversion.
        factory: Any = kind if isinstance(kind, type) and issubclass(kind, CloudEvent) else None
        return decode(body, attributes, factory)  # type: ignore[return-value]


def to_message(event: BaseCloudEvent, scheme: str, mode: Mode | None = None, **options: Any) -> Message:
    """``event`` as a :class:`cloudqueue.Message` for a provider of ``scheme`` (``"pubsub"``,
    or the destination URL itself); ``options`` are Message's (``ordering_key``,
    ``deduplication_id``, ``delay``)."""
    body, attributes = encode(event, scheme, checked_mode(mode))
    return Message(body, attributes=attributes, **options)


def from_received(message: _Carrier) -> CloudEvent:
    """The CloudEvent a received message carries, in either mode and any binding.
    Raises :class:`cloudqueue.errors.DecodeError` naming what is missing or malformed."""
    return decode(message.body, message.attributes)  # type: ignore[return-value]
