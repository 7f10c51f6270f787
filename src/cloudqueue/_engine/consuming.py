"""Receiving: adaptive prefetch under an in-flight cap, settlements batched in
the background, automatic lease extension, and the close sequence."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from ..driver import Delivery, SubscriptionDriver
from ..errors import Closed, InvalidArgument, QueueError, Unsupported
from .effects import WAKE, Step, Wait
from .retry import RetryPolicy, batch_call, single_call
from .validation import check_nack_delay, check_seconds

__all__ = ["ACK", "DEAD_LETTER", "EXTEND", "NACK", "ConsumerCore", "PrefetchSizer"]

log = logging.getLogger("cloudqueue")

# Settlement kinds, named after the driver method that carries them.
ACK = "ack"
NACK = "nack"
EXTEND = "extend"
DEAD_LETTER = "dead_letter"
_KINDS = (ACK, NACK, DEAD_LETTER, EXTEND)
_FOREVER = 1e12  # seconds: any finite wait below it needs no further checking


class PrefetchSizer:
    """Sizes pulls to hold about ``horizon`` seconds of the observed hand-out
    rate (as Go CDK does), so a fast consumer asks for big batches and a slow
    one does not hoard messages that competing consumers could take."""

    __slots__ = ("_count", "_since", "cap", "horizon", "rate")

    def __init__(self, cap: int, horizon: float = 2.0) -> None:
        self.cap = cap
        self.horizon = horizon
        self.rate = 0.0
        self._count = 0
        self._since = time.monotonic()

    def handed_out(self, count: int) -> None:
        self._count += count

    def target(self, now: float) -> int:
        """Messages to ask for, given ``now`` (``time.monotonic()``)."""
        elapsed = now - self._since
        if elapsed >= 0.25:
            observed = self._count / elapsed
            self.rate = observed if self.rate == 0.0 else 0.5 * self.rate + 0.5 * observed
            self._count = 0
            self._since = now
        return max(1, min(self.cap, int(self.rate * self.horizon)))


class _Held:
    """A delivery this consumer holds: prefetched or handed out, not yet settled."""

    __slots__ = ("lease", "received_at")

    def __init__(self, received_at: float, lease: float | None) -> None:
        self.received_at = received_at
        self.lease = lease


class ConsumerCore:
    def __init__(
        self,
        driver: SubscriptionDriver,
        where: str,
        *,
        retry: RetryPolicy,
        max_in_flight: int,
        settle_delay: float,
        max_lease_extension: float,
    ) -> None:
        if max_in_flight < 1:
            raise InvalidArgument("max_in_flight must be at least 1")
        self.driver = driver
        self.where = where
        self.retry = retry
        self.capabilities = driver.capabilities
        self.limits = driver.capabilities.limits
        self.max_in_flight = max_in_flight
        self.settle_delay = check_seconds(settle_delay, "settle_delay")
        self.max_lease_extension = check_seconds(max_lease_extension, "max_lease_extension")
        self.sizer = PrefetchSizer(min(self.limits.max_receive_batch, max_in_flight))
        self.buffer: deque[Delivery] = deque()
        self.held: dict[Delivery, _Held] = {}
        self.pending: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
        self.pending_extends: list[Delivery] = []
        self.pending_count = 0
        self.first_pending_at = 0.0
        self.pulls = 0  # receive calls under way
        self.closing = False
        self.closed = False
        self.worker_running = False
        self.settle_failures = 0
        self.next_lease_check = 0.0  # when the worker next looks at leases

    # -- receiving -------------------------------------------------------------

    def receive(self, max_messages: int, wait: float) -> Step[list[Delivery]]:
        if self.closing:
            raise Closed(f"consumer for {self.where} is closed")
        if type(max_messages) is not int or max_messages < 1:
            raise InvalidArgument(f"max_messages must be a positive int, not {max_messages!r}")
        if type(wait) is not float or not 0.0 <= wait < _FOREVER:  # the common case is cheap
            wait = check_seconds(wait, "wait")
        now = time.monotonic()
        deadline = now + wait
        while True:
            if self.buffer:
                return self._hand_out(max_messages)
            if self.closing:
                return []
            remaining = deadline - now
            room = self.max_in_flight - len(self.held)
            if room <= 0 or self.pulls:
                # At the in-flight cap, or another caller is pulling for us.
                if remaining <= 0:
                    return []
                yield Wait(remaining)
                now = time.monotonic()
                continue
            count = min(room, self.limits.max_receive_batch, max(max_messages, self.sizer.target(now)))
            self.pulls += 1
            try:
                got: list[Delivery] = yield from single_call(
                    self.retry, "receive_batch", count,
                    max(0.0, min(remaining, self.limits.max_receive_wait)),
                )
            finally:
                self.pulls -= 1
            now = time.monotonic()
            if got:
                if self._hold(got, now):
                    yield WAKE  # the worker must look at these leases sooner
                if self.closing:
                    yield from self._give_back()
                    return []
                if len(got) > max_messages:
                    yield WAKE  # others waiting on our pull can take the rest
            elif remaining <= 0:
                return []

    def _hold(self, deliveries: list[Delivery], now: float) -> bool:
        """Track new deliveries; True if a lease needs a look before the worker's next."""
        held = self.held
        self.buffer.extend(deliveries)
        if self.max_lease_extension <= 0:  # no extension: only the in-flight count matters
            for delivery in deliveries:
                held[delivery] = _Held(now, None)
            return False
        soonest = None
        for delivery in deliveries:
            deadline = delivery.lease_deadline
            if deadline is None:
                held[delivery] = _Held(now, None)
                continue
            lease = deadline - now
            held[delivery] = _Held(now, lease)
            look_at = deadline - _margin(lease)
            if soonest is None or look_at < soonest:
                soonest = look_at
        if soonest is not None and soonest < self.next_lease_check:
            self.next_lease_check = soonest
            return True
        return False

    def _hand_out(self, count: int) -> list[Delivery]:
        buffer = self.buffer
        if count >= len(buffer):
            out = list(buffer)
            buffer.clear()
        else:
            out = [buffer.popleft() for _ in range(count)]
        self.sizer.handed_out(len(out))
        return out

    # -- settling --------------------------------------------------------------

    def settle(self, delivery: Delivery, kind: str, argument: Any) -> bool:
        """Queue a settlement; True when the background worker must be woken.

        Settling a message twice (ack after ack, nack after ack) is harmless:
        the first settlement wins and later ones do nothing.
        """
        if self.closed:
            raise Closed(
                f"consumer for {self.where} is closed; the message will be delivered "
                "again when its lease ends"
            )
        if kind is NACK:
            argument = check_nack_delay(argument, self.capabilities, self.where)
        elif kind is DEAD_LETTER:
            if not self.capabilities.dead_letter:
                raise Unsupported(f"{self.where} has no dead-letter destination")
            if not isinstance(argument, str):
                raise InvalidArgument("dead_letter reason must be a str")
        elif kind is EXTEND:
            return self._extend_requested(delivery, argument)
        if self.held.pop(delivery, None) is None:
            return False
        self.pending[kind].append(delivery.token if kind is ACK else (delivery.token, argument))
        return self._pending_added()

    def _extend_requested(self, delivery: Delivery, seconds: Any) -> bool:
        if not self.capabilities.lease_extension:
            raise Unsupported(f"{self.where} cannot extend leases")
        seconds = check_seconds(seconds, "extend")
        if seconds > self.limits.max_lease:
            raise InvalidArgument(
                f"cannot extend a lease by {seconds:g}s; {self.where} allows at most "
                f"{self.limits.max_lease:g}s"
            )
        if delivery not in self.held:
            return False
        self.pending[EXTEND].append((delivery.token, seconds))
        self.pending_extends.append(delivery)
        return self._pending_added()

    def _pending_added(self) -> bool:
        self.pending_count += 1
        if self.pending_count == 1:
            self.first_pending_at = time.monotonic()
            return True  # the worker must schedule a flush
        return self.pending_count >= self.limits.max_settle_batch

    # -- the background worker -------------------------------------------------

    def maintain(self) -> Step[None]:
        """The background worker: flush settlements when a batch is full or the
        oldest has waited ``settle_delay``; extend leases that are running out."""
        self.worker_running = True
        try:
            while True:
                now = time.monotonic()
                if self.pending_count and (
                    self.closing
                    or self.pending_count >= self.limits.max_settle_batch
                    or now >= self.first_pending_at + self.settle_delay
                ):
                    yield from self._flush()
                    continue
                if self.closing:
                    return
                if now >= self.next_lease_check:
                    self.next_lease_check = yield from self._extend_leases(now)
                    continue
                wake_at = self.next_lease_check
                if self.pending_count:
                    wake_at = min(wake_at, self.first_pending_at + self.settle_delay)
                yield Wait(max(0.0, wake_at - now))
        finally:
            self.worker_running = False

    def _flush(self) -> Step[None]:
        limit = self.limits.max_settle_batch
        for kind in _KINDS:
            entries = self.pending[kind]
            if not entries:
                continue
            batch, self.pending[kind] = entries[:limit], entries[limit:]
            extended = None
            if kind is EXTEND:
                extended = self.pending_extends[:limit]
                self.pending_extends = self.pending_extends[limit:]
            self.pending_count -= len(batch)
            if self.pending_count:
                self.first_pending_at = time.monotonic()
            outcomes = yield from batch_call(self.retry, kind, batch)
            self._record(kind, outcomes, extended)
            return

    def _record(self, kind: str, outcomes: list[Any], extended: list[Delivery] | None) -> None:
        failures = [outcome for outcome in outcomes if isinstance(outcome, QueueError)]
        if failures:
            self.settle_failures += len(failures)
            log.warning(
                "%d of %d %s settlements on %s failed (the messages will be delivered "
                "again after their lease); first error: %s",
                len(failures), len(outcomes), kind, self.where, failures[0],
            )
        if extended is not None:
            for delivery, outcome in zip(extended, outcomes, strict=True):
                if isinstance(outcome, float | int):
                    delivery.lease_deadline = float(outcome)

    def _extend_leases(self, now: float) -> Step[float]:
        """Extend held leases that end within half their length; return when to
        look again."""
        if not self.capabilities.lease_extension or self.max_lease_extension <= 0:
            return now + 3600.0
        due: list[Delivery] = []
        next_check = now + 1.0
        for delivery, held in self.held.items():
            deadline, lease = delivery.lease_deadline, held.lease
            if deadline is None or lease is None:
                continue
            if now - held.received_at >= self.max_lease_extension:
                continue  # extended long enough: let the lease run out
            margin = _margin(lease)
            if deadline - now <= margin:
                due.append(delivery)
            else:
                next_check = min(next_check, deadline - margin)
        limit = self.limits.max_settle_batch
        for start in range(0, len(due), limit):
            chunk = due[start : start + limit]
            entries = [
                (d.token, min(self.held[d].lease or 0.0, self.limits.max_lease))
                for d in chunk if d in self.held
            ]
            chunk = [d for d in chunk if d in self.held]
            if entries:
                outcomes = yield from batch_call(self.retry, EXTEND, entries)
                self._record(EXTEND, outcomes, chunk)
                for delivery in chunk:  # the extended leases need a look in time too
                    still_held = self.held.get(delivery)
                    lease_end = delivery.lease_deadline
                    if still_held is not None and still_held.lease and lease_end is not None:
                        next_check = min(next_check, lease_end - _margin(still_held.lease))
        return next_check

    # -- closing ---------------------------------------------------------------

    def close(self) -> Step[None]:
        """Stop pulling, give back what was prefetched but not handed out, let
        the worker flush every settlement, wait for pulls under way."""
        if self.closing:
            while self.worker_running or self.pulls:
                yield Wait(None)
            return
        self.closing = True
        yield from self._give_back()
        yield WAKE
        while self.worker_running or self.pulls:
            yield Wait(None)
        # The worker has gone: flush anything queued after its last look.
        while self.pending_count:
            yield from self._flush()
        self.held.clear()  # handed out, never settled: redelivered when leases end
        self.closed = True

    def _give_back(self) -> Step[None]:
        if not self.buffer:
            return
        returned = list(self.buffer)
        self.buffer.clear()
        for delivery in returned:
            self.held.pop(delivery, None)
        limit = self.limits.max_settle_batch
        for start in range(0, len(returned), limit):
            tokens = [d.token for d in returned[start : start + limit]]
            outcomes = yield from batch_call(self.retry, "release", tokens)
            self._record("release", outcomes, None)


def _margin(lease: float) -> float:
    """Extend a lease when less than this remains of it: half of it (at least
    0.25 s), so a worker thread delayed by a busy machine is still in time."""
    return max(lease / 2.0, 0.25)
