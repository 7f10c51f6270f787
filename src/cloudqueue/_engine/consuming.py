"""Receiving: adaptive prefetch under an in-flight cap, per-key sequencing, settlements
batched in the background, lease deadlines kept by renewal, and the close sequence.

Every promise about a received message is kept here, once, for every provider:

- **Ordering** (:mod:`.ordering`): at most one unsettled message per ordering key is
  handed out; followers a driver returned with it are parked until it is acked.
- **Leases**: each delivery carries the deadline its server granted. The background
  worker renews it through the driver, as often as the provider needs, for as long as
  the consumer keeps the message: ``max_lease_extension`` after receipt automatically,
  or until ``now + seconds`` after ``extend(seconds)``. A renewal the server refuses
  means the lease is lost: the message's settlements then raise :class:`LeaseLost`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from .._settlement import Settlement
from .._telemetry import active
from .._telemetry._carrier import carrier_names, extract
from ..driver import Delivery, SubscriptionDriver
from ..errors import Closed, InvalidArgument, LeaseLost, QueueError, Unsupported
from .effects import WAKE, Idle, Op, Step, Wait, concurrently
from .ordering import Admission, KeyLines
from .retry import RetryPolicy, batch_call, retry_single, single_call
from .validation import check_nack_delay, check_reason, check_seconds

__all__ = ["ConsumerCore", "PrefetchSizer"]

log = logging.getLogger("cloudqueue")

# Enum members as module constants: looking one up on its class costs about 200 ns
# in CPython 3.11, a measurable share of an ack on the hot path.
ACK, NACK, EXTEND, DEAD_LETTER = (
    Settlement.ACK, Settlement.NACK, Settlement.EXTEND, Settlement.DEAD_LETTER,
)
_OP_RECEIVE, _OP_ACK, _OP_NACK, _OP_RELEASE, _OP_EXTEND, _OP_DEAD_LETTER, _OP_INTERRUPT = (
    Op.RECEIVE, Op.ACK, Op.NACK, Op.RELEASE, Op.EXTEND, Op.DEAD_LETTER, Op.INTERRUPT,
)
_HEAD, _GIVE_BACK = Admission.HEAD, Admission.GIVE_BACK
#: Settlements waiting for the background worker, flushed in this order: a nack of
#: a key's head goes before the release of its followers.
_FLUSH_ORDER = (_OP_ACK, _OP_DEAD_LETTER, _OP_NACK, _OP_RELEASE)
#: ``messaging.operation.name`` of each settlement call's span.
_SETTLE_NAMES = {
    _OP_ACK: "ack", _OP_NACK: "nack", _OP_RELEASE: "release", _OP_EXTEND: "extend",
    _OP_DEAD_LETTER: "dead_letter",
}
#: Driver calls whose entries are ``(token, argument)`` pairs; the others take tokens.
_WITH_ARGUMENT = frozenset({_OP_NACK, _OP_DEAD_LETTER})
_FOREVER = 1e12  # seconds: any finite wait below it needs no further checking
#: Receive or settlement requests one pull or flush may have in flight at once
#: (destinations without ordering only). A large send, receive and ack each
#: overlap our CPU with the server's; on 2 cores more than 4 bought nothing more.
_REQUESTS_AT_ONCE = 4
#: When nothing needs a look at leases, the worker still looks this often.
_IDLE_LOOK = 3600.0
#: An ack whose lease ends within this (beyond ``settle_delay``) is sent at once.
_ACK_GRACE = 0.5
#: Lost messages remembered so that settling them raises; the oldest are forgotten.
_LOST_REMEMBERED = 10_000


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
    """A delivery this consumer holds (buffered, parked or handed out), not yet settled.
    Deliveries of one pull share one (see ``_hold``): change one only after ``copy``."""

    __slots__ = ("explicit_until", "keep_until", "lease", "received_at")

    def __init__(self, received_at: float, lease: float | None, keep_until: float) -> None:
        self.received_at = received_at
        #: The lease the server granted at receipt, seconds; None if unknown.
        self.lease = lease
        #: Renew the lease until this moment (monotonic): automatic extension or extend().
        self.keep_until = keep_until
        #: Set by ``extend(seconds)``: renewals then ask for all of the remaining time.
        self.explicit_until = 0.0

    def copy(self) -> _Held:
        twin = _Held(self.received_at, self.lease, self.keep_until)
        twin.explicit_until = self.explicit_until
        return twin


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
        # Read once: a consumer's destination does not change its nature while open.
        self.capabilities = driver.capabilities
        self.limits = self.capabilities.limits
        self.max_in_flight = max_in_flight
        self.settle_delay = check_seconds(settle_delay, "settle_delay")
        #: An ack whose lease ends sooner than this after the oldest pending
        #: settlement is sent at once.
        self.ack_horizon = self.settle_delay + _ACK_GRACE
        self.max_lease_extension = check_seconds(max_lease_extension, "max_lease_extension")
        # Without ordering a pull may be several requests (see _pull), so prefetch
        # may grow to the in-flight cap; with it, one request at a time.
        # Only where one request is small (SQS's 10): elsewhere one request already
        # brings 100 or more, and holding 4 x that under a short lease risks leases.
        several = not self.capabilities.ordering and self.limits.max_receive_batch <= 10
        prefetch_cap = self.limits.max_receive_batch * (_REQUESTS_AT_ONCE if several else 1)
        #: The most one pull asks for, whatever the caller's max_messages.
        self.pull_cap = prefetch_cap
        self.sizer = PrefetchSizer(min(prefetch_cap, max_in_flight))
        self.carrier = self.limits.trace_carrier
        #: Attribute names that carry trace context: never shown to the application.
        self.carrier_names = carrier_names(self.carrier)
        telemetry = active()
        self.telemetry = None if telemetry is None else telemetry.consumer(driver, where)
        #: Ready to hand out, in the order received (for ordered keys: heads only).
        self.buffer: deque[Delivery] = deque()
        self.held: dict[Delivery, _Held] = {}
        #: Per-key sequencing, for destinations that keep order.
        self.lines = KeyLines() if self.capabilities.ordering else None
        #: Messages whose lease was lost, with the reason; settling them raises.
        self.lost: dict[Delivery, QueueError] = {}
        #: Settlements for the worker to send: deliveries for ACK and RELEASE,
        #: ``(delivery, argument)`` pairs for NACK and DEAD_LETTER.
        self.pending: dict[Op, list[Any]] = {op: [] for op in _FLUSH_ORDER}
        self.pending_acks: list[Delivery] = self.pending[_OP_ACK]
        self.pending_count = 0
        self.first_pending_at = 0.0
        #: Flush pending settlements now, without waiting for settle_delay.
        self.flush_soon = False
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
        lines = self.lines
        while True:
            if self.buffer:
                return self._hand_out(max_messages)
            if self.closing:
                return []
            remaining = deadline - now
            room = self.max_in_flight - len(self.held)
            if room <= 0 or self.pulls or (lines is not None and lines.draining):
                # At the in-flight cap, or another caller is pulling for us, or a
                # key is being given back (a pull now could bring it out of order).
                if remaining <= 0:
                    return []
                yield Wait(remaining)
                now = time.monotonic()
                continue
            if lines is not None and self.pending_count and not self.flush_soon:
                # On an ordered destination a key's next message may wait on the ack
                # of its predecessor: send the acks now rather than after settle_delay.
                self.flush_soon = True
                yield WAKE
            count = min(room, self.pull_cap, max(max_messages, self.sizer.target(now)))
            epoch = lines.pull_started() if lines is not None else 0
            self.pulls += 1
            try:
                wait_for = max(0.0, min(remaining, self.limits.max_receive_wait))
                if count > self.limits.max_receive_batch:
                    got = yield from self._pull(count, wait_for)
                elif self.telemetry is None or not self.telemetry.live():
                    # One request, written out down to the driver call: each generator
                    # layer costs every receive.
                    args = (count, wait_for)
                    failure = None
                    try:
                        got = yield (_OP_RECEIVE, args)
                    except Exception as error:
                        failure = error
                    if failure is not None:
                        got = yield from retry_single(self.retry, _OP_RECEIVE, args, failure)
                    self._take_trace_context(got)
                else:  # the receive span takes the context first, to link each message
                    call = single_call(self.retry, _OP_RECEIVE, count, wait_for)
                    got = yield from self.telemetry.receive(call, self._take_trace_context)
            finally:
                self.pulls -= 1
            now = time.monotonic()
            if got:
                if self._hold(got, now, epoch):
                    yield WAKE  # the worker must look at leases or give back sooner
                if self.closing:
                    yield from self._give_back()
                    return []
                if len(got) > max_messages:
                    yield WAKE  # others waiting on our pull can take the rest
            if lines is not None and not self.pulls:
                lines.no_pulls_under_way()
            if remaining <= 0 and not self.buffer:
                return []

    def _pull(self, count: int, wait: float) -> Step[list[Delivery]]:
        """Up to ``count`` deliveries, more than one request's worth (no ordering:
        see the sizer's cap), in several requests in flight at once. Only the first
        waits for messages; the others take what is there now, so a nearly empty
        queue costs no wait beyond the first's."""
        per_request = self.limits.max_receive_batch
        calls = [_caught(self._receive_call(per_request, wait))]
        for start in range(per_request, count, per_request):
            calls.append(_caught(self._receive_call(min(per_request, count - start), 0.0)))
        answers = yield from concurrently(calls)
        got: list[Delivery] = []
        failure: QueueError | None = None
        for answer in answers:
            if isinstance(answer, QueueError):
                failure = failure or answer
            else:
                got.extend(answer)
        if failure is not None:
            if not got:
                raise failure
            # What the others received is held (handed out or given back), not
            # dropped; a lasting failure shows on the next pull.
            log.debug("a receive request failed beside others that answered: %r", failure)
        return got

    def _receive_call(self, count: int, wait: float) -> Step[list[Delivery]]:
        call = single_call(self.retry, _OP_RECEIVE, count, wait)
        if self.telemetry is None or not self.telemetry.live():
            got: list[Delivery] = yield from call
            self._take_trace_context(got)
            return got
        # The receive span takes the context first, to link each message.
        return (yield from self.telemetry.receive(call, self._take_trace_context))

    def _take_trace_context(self, deliveries: list[Delivery]) -> None:
        """Move carrier attributes into ``trace_context``, telemetry on or off, so
        that what the application sees does not depend on who sent the message."""
        names = self.carrier_names
        for delivery in deliveries:
            attributes = delivery.attributes
            if attributes and not names.isdisjoint(attributes):
                # A new dict: the driver's may be shared (the memory broker's is).
                delivery.attributes, delivery.trace_context = extract(self.carrier, attributes)

    def _hold(self, deliveries: list[Delivery], now: float, epoch: int) -> bool:
        """Track new deliveries; True if the worker must look sooner than planned."""
        held = self.held
        auto_until = now + self.max_lease_extension
        total = self.limits.max_lease_total
        if total is not None:
            auto_until = min(auto_until, now + total)
        # Deliveries of one pull share their lease deadline (mostly), so they share
        # one record: extend() gives a message a record of its own before changing
        # it. One record per pull instead of one per message is a tenth of the
        # engine's cost per message in a batched round trip.
        record: _Held | None = None
        shared: float | None = None
        soonest = _FOREVER  # the earliest lease deadline among them
        for delivery in deliveries:
            deadline = delivery.lease_deadline
            if record is None or deadline != shared:
                if deadline is None:
                    record = _Held(now, None, auto_until)
                else:
                    record = _Held(now, deadline - now, auto_until)
                    if deadline < soonest:
                        soonest = deadline
                shared = deadline
            held[delivery] = record
        lines = self.lines
        give_back = False
        if lines is None:
            self.buffer.extend(deliveries)
        else:
            give_back = self._admit(deliveries, lines, epoch)
        if soonest == _FOREVER:
            return give_back
        # All were received together, so the earliest deadline needs the earliest look.
        if auto_until > soonest:
            look_at = soonest - _margin(soonest - now)  # renew in time
        elif lines is not None:
            look_at = soonest  # notice the end: a key must move on
        else:
            return give_back
        if look_at < self.next_lease_check:
            self.next_lease_check = look_at
            return True
        return give_back

    def _admit(self, deliveries: list[Delivery], lines: KeyLines, epoch: int) -> bool:
        """Buffer the key heads and the unkeyed; park followers; True if any went back."""
        buffer = self.buffer
        give_back = False
        for delivery in deliveries:
            key = delivery.ordering_key
            if key is None:
                buffer.append(delivery)
                continue
            admission = lines.admit(delivery, key, epoch)
            if admission is _HEAD:
                buffer.append(delivery)
            elif admission is _GIVE_BACK:
                del self.held[delivery]
                self._queue(_OP_RELEASE, delivery, None)
                give_back = True
        return give_back

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

    def settle(self, delivery: Delivery, kind: Settlement, argument: Any) -> bool:
        """Queue a settlement; True when the background worker or waiting receivers
        must be woken.

        Settling a message twice (ack after ack, nack after ack) is harmless:
        the first settlement wins and later ones do nothing. Settling a message
        whose lease was lost raises :class:`LeaseLost` (a nack does nothing: the
        message comes back anyway).
        """
        if kind is ACK and not self.closed:  # the hot path, first and written out
            if self.held.pop(delivery, None) is None:
                return self._settled_before(delivery, kind)
            self.pending_acks.append(delivery)
            count = self.pending_count = self.pending_count + 1
            if count == 1:
                self.first_pending_at = time.monotonic()
                woken = True
            else:
                woken = count >= self.limits.max_settle_batch
            deadline = delivery.lease_deadline
            if deadline is not None and deadline < self.first_pending_at + self.ack_horizon:
                # Waiting to share a request could let the lease end first.
                self.flush_soon = woken = True
            if delivery.ordering_key is not None and self.lines is not None:
                return self._key_moves_on(delivery, delivery.ordering_key, _OP_ACK) or woken
            return woken
        if self.closed:
            raise Closed(
                f"consumer for {self.where} is closed; the message will be delivered "
                "again when its lease ends"
            )
        if kind is NACK:
            op = _OP_NACK
            argument = check_nack_delay(argument, self.capabilities, self.where)
        elif kind is DEAD_LETTER:
            op = _OP_DEAD_LETTER
            if not self.capabilities.dead_letter:
                raise Unsupported(f"{self.where} has no dead-letter destination")
            argument = check_reason(argument)
            limit = self.limits.max_attribute_value_bytes
            if len(argument) * 4 > limit and len(argument.encode()) > limit:
                raise InvalidArgument(
                    f"dead_letter reason is {len(argument.encode())} bytes; {self.where} "
                    f"carries at most {limit} bytes in an attribute"
                )
        elif kind is EXTEND:
            return self._extend_requested(delivery, argument)
        else:
            raise InvalidArgument(f"unknown settlement {kind!r}")
        if self.held.pop(delivery, None) is None:
            return self._settled_before(delivery, kind)
        woken = self._queue(op, delivery, argument)
        key = delivery.ordering_key
        if key is not None and self.lines is not None:
            woken = self._key_moves_on(delivery, key, op) or woken
        return woken

    def _settled_before(self, delivery: Delivery, kind: Settlement) -> bool:
        lost = self.lost.pop(delivery, None)
        if lost is None or kind is NACK:
            return False
        raise LeaseLost(
            f"cannot {kind.replace('_', '-')} message {delivery.id} on {self.where}: its "
            f"lease was lost ({lost}); it may be delivered again"
        )

    def _key_moves_on(self, delivery: Delivery, key: str, op: Op) -> bool:
        """The settled ``delivery`` was (probably) its key's head: after an ack or
        dead letter the next follower goes out; after a nack the followers go back."""
        lines = self.lines
        assert lines is not None
        if op is _OP_NACK:
            lines.giving_back(key)  # the nack itself: the key drains until it is answered
            return self._give_back_key(delivery, key)
        follower = lines.advance(delivery, key)
        if follower is None:
            return False
        deadline = follower.lease_deadline
        record = self.held.get(follower)
        if (
            deadline is not None
            and record is not None
            and deadline - time.monotonic() < _least_to_hand_out(record.lease)
        ):
            # Too late to be worth handing out: give it and those behind it back.
            self._give_back_head(follower, key)
            return True
        self.buffer.append(follower)
        return True

    def _give_back_head(self, delivery: Delivery, key: str) -> None:
        """Give back a key's head that was never handed out, and those behind it."""
        lines = self.lines
        assert lines is not None
        self.held.pop(delivery, None)
        lines.giving_back(key)
        self._queue(_OP_RELEASE, delivery, None)
        self._give_back_key(delivery, key)

    def _give_back_key(self, delivery: Delivery, key: str) -> bool:
        """Reset ``key`` at ``delivery`` and queue the give-back of what it returns."""
        lines = self.lines
        assert lines is not None
        returned = lines.reset(delivery, key)
        for message in returned:
            self.held.pop(message, None)
            self._queue(_OP_RELEASE, message, None)
        return bool(returned)

    def _extend_requested(self, delivery: Delivery, seconds: Any) -> bool:
        if not self.capabilities.lease_extension:
            raise Unsupported(f"{self.where} cannot extend leases")
        seconds = check_seconds(seconds, "extend")
        record = self.held.get(delivery)
        if record is None:
            return self._settled_before(delivery, EXTEND)
        now = time.monotonic()
        total = self.limits.max_lease_total
        if total is not None and now + seconds > record.received_at + total:
            raise InvalidArgument(
                f"cannot keep message {delivery.id} leased {seconds:g}s more: {self.where} "
                f"keeps a lease at most {total:g}s after receipt "
                f"({record.received_at + total - now:.0f}s left)"
            )
        until = now + seconds
        # A record of its own: the one it had may be shared with its pull's others.
        record = self.held[delivery] = record.copy()
        record.explicit_until = max(record.explicit_until, until)
        record.keep_until = max(record.keep_until, until)
        self.next_lease_check = now  # renew now if the lease ends before the next look
        return True

    def _queue(self, op: Op, delivery: Delivery, argument: Any) -> bool:
        """Queue a settlement for the worker; True when it must be woken."""
        entry: Any = (delivery, argument) if op in _WITH_ARGUMENT else delivery
        self.pending[op].append(entry)
        self.pending_count += 1
        if self.pending_count == 1:
            self.first_pending_at = time.monotonic()
            return True  # the worker must schedule a flush
        return self.pending_count >= self.limits.max_settle_batch

    # -- the background worker -------------------------------------------------

    def maintain(self) -> Step[None]:
        """The background worker: flush settlements when a batch is full or the
        oldest has waited ``settle_delay``; renew leases that are running out."""
        self.worker_running = True
        try:
            while True:
                now = time.monotonic()
                if not self.pending_count:
                    self.flush_soon = False
                elif (
                    self.closing
                    or self.flush_soon
                    or self.pending_count >= self.limits.max_settle_batch
                    or now >= self.first_pending_at + self.settle_delay
                ):
                    yield from self._flush()
                    continue
                if self.closing:
                    return
                if now >= self.next_lease_check:
                    self.next_lease_check = _FOREVER  # so a look asked for meanwhile is kept
                    planned = yield from self._tend_leases(now)
                    self.next_lease_check = min(self.next_lease_check, planned)
                    continue
                wake_at = self.next_lease_check
                if self.pending_count:
                    wake_at = min(wake_at, self.first_pending_at + self.settle_delay)
                # Idle, not Wait: woken by what changes its plans (a WAKE, a settlement
                # that asks), not by the end of every receive.
                yield Idle(max(0.0, wake_at - now))
        finally:
            self.worker_running = False

    def _flush(self) -> Step[None]:
        limit = self.limits.max_settle_batch
        for op in _FLUSH_ORDER:
            entries = self.pending[op]
            if not entries:
                continue
            if op is _OP_ACK and len(entries) > limit and self.lines is None:
                # A backlog of acks: several requests in flight together.
                take = min(len(entries), limit * _REQUESTS_AT_ONCE)
                batches = [entries[start:start + limit] for start in range(0, take, limit)]
            else:
                take = min(len(entries), limit)
                batches = [entries[:take]]
            del entries[:take]  # in place: pending_acks stays the same list
            self.pending_count -= take
            if self.pending_count:
                self.first_pending_at = time.monotonic()
            if len(batches) == 1:
                yield from self._send(op, batches[0])
            else:
                yield from concurrently([self._send(op, batch) for batch in batches])
            return

    def _send(self, op: Op, batch: list[Any]) -> Step[None]:
        if op in _WITH_ARGUMENT:
            deliveries = [delivery for delivery, _ in batch]
            arguments: list[Any] = [(delivery.token, argument) for delivery, argument in batch]
        else:
            deliveries = batch
            arguments = [delivery.token for delivery in batch]
        outcomes = yield from self._settle_call(op, deliveries, arguments)
        self._report_failures(op, outcomes)
        lines = self.lines
        if lines is not None and lines.draining and (op is _OP_NACK or op is _OP_RELEASE):
            for delivery in deliveries:
                if delivery.ordering_key is not None:
                    lines.given_back(delivery.ordering_key)
            if not lines.draining:
                yield WAKE  # receivers waiting for the drain may pull again

    def _settle_call(self, op: Op, deliveries: list[Delivery], arguments: list[Any]) -> Step[list[Any]]:
        """One driver settlement call with its retries, in a span when telemetry is on."""
        call = batch_call(self.retry, op, arguments)
        if self.telemetry is None or not self.telemetry.live():
            return (yield from call)
        return (yield from self.telemetry.settle(_SETTLE_NAMES[op], deliveries, call))

    def _report_failures(self, op: Op, outcomes: list[Any]) -> None:
        failures = [outcome for outcome in outcomes if isinstance(outcome, QueueError)]
        if failures:
            self.settle_failures += len(failures)
            log.warning(
                "%d of %d %s settlements on %s failed (the messages will be delivered "
                "again after their lease); first error: %s",
                len(failures), len(outcomes), op.name.lower(), self.where, failures[0],
            )

    # -- leases ------------------------------------------------------------------

    def _look_at(self, delivery: Delivery, record: _Held, deadline: float) -> float:
        """When the worker must next look at this delivery's lease."""
        if record.keep_until > deadline:
            return deadline - _margin(record.lease)  # renew it in time
        if self.lines is not None and delivery.ordering_key is not None:
            return deadline  # notice its end: its key must move on
        return _FOREVER

    def _tend_leases(self, now: float) -> Step[float]:
        """Renew the leases that end within their margin and are still wanted;
        deal with the ones that ended. Returns when to look again."""
        renew: list[tuple[Delivery, float]] = []
        ended: list[Delivery] = []
        next_look = now + _IDLE_LOOK
        total = self.limits.max_lease_total
        for delivery, record in self.held.items():
            deadline = delivery.lease_deadline
            if deadline is None:
                if record.explicit_until > now:  # the provider never said: renew as asked
                    renew.append((delivery, record.explicit_until - now))
                    record.explicit_until = 0.0
                continue
            if deadline <= now:
                if self.lines is not None and delivery.ordering_key is not None:
                    ended.append(delivery)
                continue
            if record.keep_until > deadline and deadline - now <= _margin(record.lease):
                if now < record.explicit_until:
                    seconds = record.explicit_until - now
                else:
                    seconds = min(record.lease or self.limits.max_lease, record.keep_until - now)
                if total is not None:
                    seconds = min(seconds, record.received_at + total - now)
                if seconds > 0:
                    renew.append((delivery, min(seconds, self.limits.max_lease)))
            else:
                next_look = min(next_look, self._look_at(delivery, record, deadline))
        for delivery in ended:
            self._lease_ended(delivery)
        limit = self.limits.max_settle_batch
        for start in range(0, len(renew), limit):
            chunk = [(d, s) for d, s in renew[start : start + limit] if d in self.held]
            if not chunk:
                continue
            outcomes = yield from self._settle_call(
                _OP_EXTEND, [delivery for delivery, _ in chunk],
                [(delivery.token, seconds) for delivery, seconds in chunk],
            )
            for (delivery, _), outcome in zip(chunk, outcomes, strict=True):
                kept = self.held.get(delivery)
                if isinstance(outcome, float | int) and not isinstance(outcome, bool):
                    delivery.lease_deadline = float(outcome)
                    if kept is not None:
                        next_look = min(next_look, self._look_at(delivery, kept, float(outcome)))
                elif isinstance(outcome, QueueError) and not outcome.retryable:
                    self._lease_lost(delivery, outcome)
                elif kept is not None and delivery.lease_deadline is not None:
                    # A transient failure that outlasted the retries: try again soon,
                    # while the lease may still be there.
                    next_look = min(next_look, now + 0.25)
        return next_look

    def _lease_ended(self, delivery: Delivery) -> None:
        """A held message of an ordered key outlived its lease: the server redelivers
        it (and, on some servers, those after it), so its key must move on."""
        key = delivery.ordering_key
        lines = self.lines
        assert key is not None and lines is not None
        if lines.heads.get(key) is delivery:
            if delivery in self.buffer:  # never handed out: too late to be worth it
                self.buffer.remove(delivery)
                self._give_back_head(delivery, key)
            else:
                self._give_back_key(delivery, key)
        elif lines.is_parked(delivery, key):
            self._give_back_key(delivery, key)
        log.debug("lease of message %s on %s ended while held", delivery.id, self.where)

    def _lease_lost(self, delivery: Delivery, error: QueueError) -> None:
        """A renewal was refused: the lease is gone for good."""
        log.warning(
            "lease of message %s on %s was lost (it may be delivered again): %s",
            delivery.id, self.where, error,
        )
        key = delivery.ordering_key
        lines = self.lines
        if key is not None and lines is not None and lines.is_parked(delivery, key):
            self._give_back_key(delivery, key)  # never handed out: it and those behind go back
            return
        if delivery in self.buffer:  # never handed out
            self.buffer.remove(delivery)
            self.held.pop(delivery, None)
            handed_out = False
        else:
            handed_out = self.held.pop(delivery, None) is not None
        if key is not None and lines is not None and lines.heads.get(key) is delivery:
            self._give_back_key(delivery, key)
        if handed_out:
            self.lost[delivery] = error
            if len(self.lost) > _LOST_REMEMBERED:
                del self.lost[next(iter(self.lost))]

    # -- closing ---------------------------------------------------------------

    def close(self) -> Step[None]:
        """Stop pulling, give back what was prefetched but not handed out, let
        the worker flush every settlement, wait for pulls under way."""
        if self.closing:
            while self.worker_running or self.pulls:
                yield Wait(None)
            return
        self.closing = True
        if self.pulls:
            # Receives under way (other threads' or tasks') end now, not after their wait.
            try:
                yield (_OP_INTERRUPT, ())
            except QueueError as error:
                log.debug("interrupting receives on %s failed: %s", self.where, error)
        yield from self._give_back()
        yield WAKE
        while self.worker_running or self.pulls:
            yield Wait(None)
        # The worker has gone: flush anything queued after its last look.
        while self.pending_count:
            yield from self._flush()
        self.held.clear()  # handed out, never settled: redelivered when leases end
        self.lost.clear()
        self.closed = True

    def _give_back(self) -> Step[None]:
        """Release everything received but not handed out: buffered and parked."""
        returned = list(self.buffer)
        self.buffer.clear()
        if self.lines is not None:
            returned.extend(self.lines.take_all_parked())
        if not returned:
            return
        for delivery in returned:
            self.held.pop(delivery, None)
        limit = self.limits.max_settle_batch
        for start in range(0, len(returned), limit):
            chunk = returned[start : start + limit]
            outcomes = yield from self._settle_call(_OP_RELEASE, chunk, [d.token for d in chunk])
            self._report_failures(_OP_RELEASE, outcomes)


def _caught(call: Step[list[Delivery]]) -> Step[list[Delivery] | QueueError]:
    try:
        return (yield from call)
    except QueueError as error:
        return error


def _margin(lease: float | None) -> float:
    """Renew a lease when less than this remains of it: half of it (at least
    0.25 s), so a worker thread delayed by a busy machine is still in time."""
    return max((lease or 0.0) / 2.0, 0.25)


def _least_to_hand_out(lease: float | None) -> float:
    """A parked message with less lease than this left is given back rather than
    handed out: its handler would likely see it redelivered meanwhile."""
    return min(0.5, _margin(lease) / 2.0)
