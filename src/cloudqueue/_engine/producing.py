"""Sending: validation, coalescing of concurrent sends, batching by limits, retries."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from .._message import Message
from .._telemetry import active
from ..driver import TopicDriver
from ..errors import Closed, QueueError
from .effects import WAKE, Op, Step, Wait, concurrently
from .retry import RetryPolicy, batch_call
from .validation import as_batch, check_batch

_SEND = Op.SEND  # a module constant: a lookup on the enum class is slow in CPython 3.11

__all__ = ["ProducerCore"]


class _Ticket:
    """One caller's share of the pending messages, filled in as batches finish."""

    __slots__ = ("remaining", "results")

    def __init__(self, count: int) -> None:
        self.results: list[str | QueueError | None] = [None] * count
        self.remaining = count


class _Entry:
    __slots__ = ("index", "message", "size", "ticket")

    def __init__(self, message: Message, size: int, ticket: _Ticket, index: int) -> None:
        self.message = message
        self.size = size
        self.ticket = ticket
        self.index = index


class ProducerCore:
    """Group commit: every sender queues its messages; whoever finds a free
    batch slot sends the oldest pending messages, its own and others', in
    batches as large as the limits allow. A lone sender pays no hand-off; many
    concurrent senders share requests."""

    def __init__(
        self, driver: TopicDriver, where: str, retry: RetryPolicy, max_concurrent_batches: int
    ) -> None:
        self.driver = driver
        self.where = where
        self.retry = retry
        self.max_concurrent_batches = max_concurrent_batches
        self.limits = driver.capabilities.limits
        self.closed = False
        self._pending: deque[_Entry] = deque()
        self._sending = 0
        self._keyed_in_flight = False
        telemetry = active()
        self.telemetry = None if telemetry is None else telemetry.producer(driver, where)

    def validate(self, messages: Iterable[Message]) -> tuple[Sequence[Message], list[int]]:
        """``messages`` as a sequence, and their sizes, after checking them; pure,
        needs no lock. Any iterable of ``Message`` is taken (a generator too)."""
        batch = as_batch(messages)
        capabilities = self.driver.capabilities
        sizes = check_batch(batch, capabilities, self.driver.measure, self.where)
        if self.telemetry is not None and self.telemetry.live():
            # Here, in the sender's thread or task: its current span is the parent.
            return self.telemetry.prepare(batch, sizes, capabilities.limits, self.driver.measure)
        return batch, sizes

    def send(self, messages: Sequence[Message], sizes: list[int]) -> Step[list[str | QueueError]]:
        if self.closed:
            raise Closed(f"producer for {self.where} is closed")
        keyed = _keyed(messages)
        if (
            not self._pending
            and len(messages) <= self.limits.max_send_batch
            and sum(sizes) <= self.limits.max_send_batch_bytes
            and self._may_start(keyed)
        ):
            # Nobody is queued and the messages fit one request: send them
            # directly, without the hand-off bookkeeping.
            self._sending += 1
            self._keyed_in_flight = keyed
            try:
                if self.telemetry is not None and self.telemetry.live():
                    call = batch_call(self.retry, _SEND, messages)
                    return (yield from self.telemetry.send(messages, call))
                return (yield from batch_call(self.retry, _SEND, messages))
            finally:
                self._sending -= 1
                if keyed:
                    self._keyed_in_flight = False
        ticket = _Ticket(len(messages))
        self._pending.extend(
            _Entry(message, size, ticket, index)
            for index, (message, size) in enumerate(zip(messages, sizes, strict=True))
        )
        try:
            while ticket.remaining:
                if not self._pending or self._sending >= self.max_concurrent_batches:
                    yield Wait(None)  # another sender carries our messages, or a slot frees
                    continue
                batch = self._take_batch()
                keyed = _keyed(entry.message for entry in batch)
                if not self._may_start(keyed):
                    self._pending.extendleft(reversed(batch))
                    yield Wait(None)
                    continue
                more = [] if keyed else self._take_unkeyed_batches()
                if more:
                    yield from self._send_batches([batch, *more], ticket)
                else:
                    yield from self._send_one_batch(batch, ticket, keyed)
        except BaseException:
            self._withdraw(ticket)
            raise
        return ticket.results  # type: ignore[return-value]  # every slot is filled

    def _take_batch(self) -> list[_Entry]:
        limits = self.limits
        batch = [self._pending.popleft()]
        total = batch[0].size
        while (
            self._pending
            and len(batch) < limits.max_send_batch
            and total + self._pending[0].size <= limits.max_send_batch_bytes
        ):
            entry = self._pending.popleft()
            total += entry.size
            batch.append(entry)
        return batch

    def _take_unkeyed_batches(self) -> list[list[_Entry]]:
        """More batches to send beside one just taken, while free slots last: the
        requests of a large send then travel together instead of one after another.
        Stops at a batch with ordering keys (those go alone, see ``_may_start``)."""
        batches: list[list[_Entry]] = []
        while self._pending and self._sending + len(batches) + 1 < self.max_concurrent_batches:
            batch = self._take_batch()
            if _keyed(entry.message for entry in batch):
                self._pending.extendleft(reversed(batch))
                break
            batches.append(batch)
        return batches

    def _may_start(self, keyed: bool) -> bool:
        """Whether a batch may go now. Batches with ordering keys go alone: two
        requests under way at once could land a key's messages out of order."""
        if self._keyed_in_flight:
            return False
        return self._sending == 0 if keyed else self._sending < self.max_concurrent_batches

    def _send_one_batch(self, batch: list[_Entry], ticket: _Ticket, keyed: bool) -> Step[None]:
        self._sending += 1
        self._keyed_in_flight = keyed
        try:
            messages = [entry.message for entry in batch]
            if self.telemetry is None or not self.telemetry.live():
                outcomes = yield from batch_call(self.retry, _SEND, messages)
            else:
                call = batch_call(self.retry, _SEND, messages)
                outcomes = yield from self.telemetry.send(messages, call)
        except BaseException:
            # Interrupted (cancelled) while carrying others' messages: put them back
            # for the next sender. They may have reached the server: at least once.
            self._pending.extendleft(reversed(batch))
            raise
        finally:
            self._sending -= 1
            if keyed:
                self._keyed_in_flight = False
        for entry, outcome in zip(batch, outcomes, strict=True):
            entry.ticket.results[entry.index] = outcome
            entry.ticket.remaining -= 1
        if self._pending or any(entry.ticket is not ticket for entry in batch):
            yield WAKE  # senders whose messages we carried, or who wait for a slot

    def _send_batches(self, batches: list[list[_Entry]], ticket: _Ticket) -> Step[None]:
        """Unkeyed batches with their requests in flight together; each one's
        outcomes are filled in as it finishes (retries included)."""
        self._sending += len(batches)
        done = [False] * len(batches)
        try:
            yield from concurrently([
                self._carry(batch, done, position) for position, batch in enumerate(batches)
            ])
        except BaseException:
            # As in _send_one_batch: what was not answered goes back for the next sender.
            for batch, finished in zip(reversed(batches), reversed(done), strict=True):
                if not finished:
                    self._pending.extendleft(reversed(batch))
            raise
        finally:
            self._sending -= len(batches)
        if self._pending or any(entry.ticket is not ticket for batch in batches for entry in batch):
            yield WAKE

    def _carry(self, batch: list[_Entry], done: list[bool], position: int) -> Step[None]:
        messages = [entry.message for entry in batch]
        if self.telemetry is None or not self.telemetry.live():
            outcomes = yield from batch_call(self.retry, _SEND, messages)
        else:
            outcomes = yield from self.telemetry.send(messages, batch_call(self.retry, _SEND, messages))
        for entry, outcome in zip(batch, outcomes, strict=True):
            entry.ticket.results[entry.index] = outcome
            entry.ticket.remaining -= 1
        done[position] = True

    def _withdraw(self, ticket: _Ticket) -> None:
        """Drop a failed caller's messages that nobody has taken yet."""
        if any(entry.ticket is ticket for entry in self._pending):
            self._pending = deque(e for e in self._pending if e.ticket is not ticket)

    def drain(self) -> Step[bool]:
        """Close: refuse new sends, wait for those under way (other threads' or
        tasks'). True for the first caller, who then closes the driver."""
        first = not self.closed
        self.closed = True
        while self._pending or self._sending:
            yield Wait(None)
        return first


def _keyed(messages: Iterable[Message]) -> bool:
    for message in messages:  # noqa: SIM110  # a plain loop: any() with a generator costs more per send
        if message.ordering_key is not None:
            return True
    return False
