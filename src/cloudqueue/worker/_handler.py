"""Handlers, and the messages handed to them by the worker and the serverless adapters.

A handler gets the consumer API's own message types (:class:`cloudqueue.ReceivedMessage`
for a plain function, :class:`cloudqueue.AsyncReceivedMessage` for a coroutine function).
Those types settle through a :class:`~cloudqueue._settlement.Settler`, normally their
consumer; here a :class:`SettlementRecord` stands in for it, so the runtime learns
whether the handler settled the message itself and an adapter can refuse what its
trigger cannot do.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from .._received import AsyncReceivedMessage, ReceivedMessage
from .._settlement import Settlement

if TYPE_CHECKING:
    from ..driver import Delivery

__all__ = [
    "AsyncHandler", "Forward", "Handler", "SettlementRecord", "SyncHandler", "is_async_handler",
    "message_for", "message_type",
]

SyncHandler: TypeAlias = Callable[[ReceivedMessage], object]
AsyncHandler: TypeAlias = Callable[[AsyncReceivedMessage], Awaitable[object]]
Handler: TypeAlias = SyncHandler | AsyncHandler

#: ``forward(delivery, kind, argument)``: carries a settlement out (or raises to refuse it).
Forward: TypeAlias = Callable[["Delivery", Settlement, Any], None]


# Module constants: a lookup on the enum class is slow.
_EXTEND, _ACK = Settlement.EXTEND, Settlement.ACK


def is_async_handler(handler: Callable[..., object]) -> bool:
    """True for a coroutine function (also behind ``functools.partial`` or as ``__call__``)."""
    target: object = handler
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class SettlementRecord:
    """A :class:`~cloudqueue._settlement.Settler` behind one message: forwards each
    settlement and remembers the first that ended the delivery (``ack``, ``nack`` or
    ``dead_letter``; ``extend`` does not end it). ``before_ack``, when set, runs
    before a first ``ack`` is forwarded (the middleware's hook of that name)."""

    __slots__ = ("_forward", "argument", "before_ack", "kind")

    def __init__(self, forward: Forward) -> None:
        self._forward = forward
        self.kind: Settlement | None = None
        self.argument: Any = None
        self.before_ack: Callable[[], None] | None = None

    def settle(self, delivery: Delivery, kind: Settlement, argument: float | str | None) -> None:
        if kind is _ACK and self.kind is None and self.before_ack is not None:
            self.before_ack()
        self._forward(delivery, kind, argument)  # raises when refused: nothing recorded then
        if kind is not _EXTEND and self.kind is None:
            self.kind = kind
            self.argument = argument


MessageFactory: TypeAlias = Callable[["Delivery", SettlementRecord], ReceivedMessage | AsyncReceivedMessage]


def message_type(is_async: bool) -> MessageFactory:
    """The message class a handler of this kind takes, built with a SettlementRecord."""
    return cast(MessageFactory, AsyncReceivedMessage if is_async else ReceivedMessage)


def message_for(
    delivery: Delivery, settlement: SettlementRecord, is_async: bool
) -> ReceivedMessage | AsyncReceivedMessage:
    """The message type a handler of this kind takes, settling through ``settlement``."""
    return message_type(is_async)(delivery, settlement)
