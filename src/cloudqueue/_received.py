"""Received messages: read-only data plus settlement, for the sync and async consumers."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, TypeVar

from ._settlement import Settlement, Settler
from .codecs._choose import DECODERS, decoder_for_type
from .wire import CONTENT_TYPE_ATTRIBUTE

if TYPE_CHECKING:
    from .codecs import Codec
    from .driver import Delivery

__all__ = ["AsyncReceivedMessage", "ReceivedMessage"]

# Module constants: looking a member up on the enum class costs more, per settlement.
_ACK, _NACK, _EXTEND, _DEAD_LETTER = (
    Settlement.ACK, Settlement.NACK, Settlement.EXTEND, Settlement.DEAD_LETTER,
)

T = TypeVar("T")


class _ReceivedBase:
    __slots__ = ("_codec", "_delivery", "_settler")

    def __init__(self, delivery: Delivery, settler: Settler, codec: Codec | None = None) -> None:
        self._delivery = delivery
        self._settler = settler
        #: The consumer's ``codec=``; None: :meth:`decode` chooses by the type asked for.
        self._codec = codec

    @property
    def delivery(self) -> Delivery:
        """The driver's record of this delivery (see :mod:`cloudqueue.driver`): for
        runtimes that hand the message on under another settler."""
        return self._delivery

    @property
    def body(self) -> bytes:
        """The body, exactly the bytes that were sent. Raises
        :class:`~cloudqueue.errors.PayloadUnavailable` when it was offloaded and
        cannot be read (the message can still be settled)."""
        delivery = self._delivery
        if delivery.payload_error is not None:
            raise delivery.payload_error
        return delivery.body

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    @property
    def content_type(self) -> str | None:
        """The ``content-type`` the sender gave (the codecs always do), or None."""
        return self._delivery.attributes.get(CONTENT_TYPE_ATTRIBUTE)

    def decode(self, kind: type[T]) -> T:
        """The payload as a ``kind``: a pydantic model, msgspec Struct, dataclass, JSON type
        (``dict[str, int]``...), CloudEvent, or ``bytes``/``str`` for the body as it is.
        Uses the consumer's ``codec=`` if it was opened with one, else the codec for
        ``kind`` (see :mod:`cloudqueue.codecs`). Raises
        :class:`~cloudqueue.errors.DecodeError` when the payload is not a valid ``kind``
        (never retryable: dead-letter it), and InvalidArgument when no codec reads ``kind``."""
        codec = self._codec
        if codec is None or kind is bytes or kind is str:
            try:
                decoder = DECODERS[kind]  # prepared on the first decode into kind
            except (KeyError, TypeError):  # the first decode into kind, or an unhashable one
                decoder = decoder_for_type(kind)  # prepares it, and keeps it when it can
            if decoder is None:  # a message class: the message itself is the payload
                return self  # type: ignore[return-value]
            # self.body inlined: its property frame alone is ~8% of a small msgspec decode.
            delivery = self._delivery
            if delivery.payload_error is not None:
                raise delivery.payload_error
            return decoder(delivery.body, delivery.attributes)  # type: ignore[no-any-return]
        return codec.decode(self.body, self._delivery.attributes, kind)

    @property
    def id(self) -> str:
        return self._delivery.id

    @property
    def attributes(self) -> dict[str, str]:
        return self._delivery.attributes

    @property
    def trace_context(self) -> dict[str, str] | None:
        """The W3C trace context headers (``traceparent``, ``tracestate``) the
        message carried, or None. They are kept out of :attr:`attributes` (each
        provider carries them under its own attribute names); pass them to an
        OpenTelemetry propagator to continue the sender's trace."""
        return self._delivery.trace_context

    @property
    def delivery_attempt(self) -> int | None:
        """1 on first delivery; None only where the provider cannot know."""
        return self._delivery.delivery_attempt

    @property
    def ordering_key(self) -> str | None:
        return self._delivery.ordering_key

    @property
    def enqueued_at(self) -> datetime.datetime | None:
        return self._delivery.enqueued_at

    @property
    def deduplication_id(self) -> str | None:
        """The deduplication id the sender gave, or None when it gave none or the
        provider cannot tell (Pub/Sub has none). Never one the library made up."""
        return self._delivery.deduplication_id

    def as_(self, native_type: type[T]) -> T | None:
        """The SDK's own message object, if it is a ``native_type``."""
        native = self._delivery.native
        return native if isinstance(native, native_type) else None

    def __repr__(self) -> str:
        delivery = self._delivery
        size = (
            "payload unavailable" if delivery.payload_error is not None
            else f"{len(delivery.body)} bytes"
        )
        return f"<{type(self).__name__} id={self.id!r} {size} attempt={self.delivery_attempt}>"


class ReceivedMessage(_ReceivedBase):
    """A message from :meth:`Consumer.receive`. Settle it once: ``ack``,
    ``nack`` or ``dead_letter`` (a second settlement does nothing).

    Settling a message whose lease was lost (a renewal was refused) raises
    :class:`~cloudqueue.LeaseLost`: it may be delivered again."""

    __slots__ = ()

    def ack(self) -> None:
        """Done: it will not be delivered again (sent in the background, flushed by close)."""
        self._settler.settle(self._delivery, _ACK, None)

    def nack(self, delay: float = 0.0) -> None:
        """Make it available again after ``delay`` seconds."""
        self._settler.settle(self._delivery, _NACK, delay)

    def extend(self, seconds: float) -> None:
        """Keep it leased until ``seconds`` from now: the consumer renews the lease
        as often as the provider needs until then (or until it is settled)."""
        self._settler.settle(self._delivery, _EXTEND, seconds)

    def dead_letter(self, reason: str = "") -> None:
        """Move it to the dead-letter destination now."""
        self._settler.settle(self._delivery, _DEAD_LETTER, reason)


class AsyncReceivedMessage(_ReceivedBase):
    """A message from :meth:`AsyncConsumer.receive`; the settlement methods are coroutines."""

    __slots__ = ()

    async def ack(self) -> None:
        self._settler.settle(self._delivery, _ACK, None)

    async def nack(self, delay: float = 0.0) -> None:
        self._settler.settle(self._delivery, _NACK, delay)

    async def extend(self, seconds: float) -> None:
        self._settler.settle(self._delivery, _EXTEND, seconds)

    async def dead_letter(self, reason: str = "") -> None:
        self._settler.settle(self._delivery, _DEAD_LETTER, reason)


