"""The messages a subscription driver handed out and has not settled, by message and by
lock token.

Why by lock token too: azure-servicebus 7.x (``_pyamqp``) can hand out two messages under
one lock token. With ``prefetch_count=0`` its receiver runs a keep-alive thread that reads
the connection every 5 seconds beside the receiving thread; both process transfer frames
outside the socket lock, and the receiver link keeps the frame being processed in one
shared attribute (``ReceiverLink._first_frame``), so under load one message can be built
with its neighbour's delivery-id and lock token. The two then share one lock at the
service: settling either settles the neighbour (possibly before its handler ran), and the
other message's own lock can only run out. The driver checks every new message's token
against this index and never hands out such a pair (see ``ServiceBusSubscription``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from azure.servicebus import ServiceBusReceivedMessage

__all__ = ["Unsettled"]

R = TypeVar("R")


class Unsettled(Generic[R]):
    """Unsettled messages and the receiver (``R``) that received each one."""

    def __init__(self) -> None:
        # The token is kept as received: the SDK's ``lock_token`` reads None once settled.
        self._holder: dict[ServiceBusReceivedMessage, tuple[R, uuid.UUID | str | None]] = {}
        self._by_token: dict[uuid.UUID | str, ServiceBusReceivedMessage] = {}

    def __bool__(self) -> bool:
        return bool(self._holder)

    def __iter__(self) -> Iterator[ServiceBusReceivedMessage]:
        return iter(list(self._holder))

    def get(self, message: object) -> R | None:
        entry = self._holder.get(message)  # type: ignore[call-overload]
        return None if entry is None else entry[0]

    def add(self, message: ServiceBusReceivedMessage, receiver: R) -> None:
        token = message.lock_token
        self._holder[message] = (receiver, token)
        if token is not None:
            self._by_token[token] = message

    def holding(self, token: uuid.UUID | str | None) -> ServiceBusReceivedMessage | None:
        """The unsettled message received under ``token``, if any."""
        return None if token is None else self._by_token.get(token)

    def pop(self, message: object) -> None:
        entry = self._holder.pop(message, None)  # type: ignore[call-overload]
        if entry is None:
            return
        token = entry[1]
        if token is not None and self._by_token.get(token) is message:
            del self._by_token[token]

    def clear(self) -> None:
        self._holder.clear()
        self._by_token.clear()

    def forget_if(self, ended: Callable[[ServiceBusReceivedMessage], bool]) -> None:
        for message in [m for m in self._holder if ended(m)]:
            self.pop(message)
