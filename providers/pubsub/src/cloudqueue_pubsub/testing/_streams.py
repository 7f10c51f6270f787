"""Flow-control state of one StreamingPull stream; the broker does the waiting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._resources import Delivered, Subscription

if TYPE_CHECKING:
    from ._state import Broker

#: Largest payload one Pull or StreamingPull response carries, as the real service caps it.
MAX_RESPONSE_BYTES = 10 * 1000 * 1000
MAX_MESSAGES_PER_STREAM_RESPONSE = 1000


class StreamSession:
    """Flow-control and lease state of one StreamingPull stream."""

    def __init__(
        self,
        broker: Broker,
        subscription: Subscription,
        ack_deadline: int,
        max_messages: int,
        max_bytes: int,
    ) -> None:
        self._broker = broker
        self.subscription = subscription
        self.ack_deadline = ack_deadline
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.outstanding_messages = 0
        self.outstanding_bytes = 0
        self.closed = False
        #: Set by the request reader when a request on the stream is invalid.
        self.error: Exception | None = None

    @property
    def subscription_name(self) -> str:
        return str(self.subscription.config.name)

    @property
    def ordered(self) -> bool:
        return self.subscription.settings.ordered

    @property
    def exactly_once(self) -> bool:
        return self.subscription.settings.exactly_once

    def lease_ended(self, size: int) -> None:
        # Called under the broker lock when a lease ends (settled, failed, expired or rewound).
        self.outstanding_messages -= 1
        self.outstanding_bytes -= size

    def room(self) -> tuple[int, int]:
        """How many messages and bytes the client's flow control still accepts."""
        messages = MAX_MESSAGES_PER_STREAM_RESPONSE
        if self.max_messages > 0:
            messages = min(messages, self.max_messages - self.outstanding_messages)
        size = MAX_RESPONSE_BYTES
        if self.max_bytes > 0:
            size = min(size, self.max_bytes - self.outstanding_bytes)
        return messages, size

    def next_batch(self) -> list[Delivered] | None:
        return self._broker.next_stream_batch(self)

    def update(self, ack_deadline: int, max_messages: int, max_bytes: int) -> None:
        self._broker.update_stream(self, ack_deadline, max_messages, max_bytes)

    def fail(self, error: Exception) -> None:
        self._broker.close_stream(self, error)

    def close(self) -> None:
        self._broker.close_stream(self, None)
