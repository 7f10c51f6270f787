"""One subscription's messages: what is ready, what is leased, and each ordering key's log.

Nothing here locks or waits: the broker in ``_state`` calls these methods while it holds its
lock, and decides what an ended lease means (acknowledgement, redelivery, backoff,
dead-lettering).

Messages without an ordering key (every message of a subscription without message ordering)
wait in one FIFO queue; a nacked or expired one goes back to its front.

Ordering keys, on a subscription with ``enable_message_ordering``
-----------------------------------------------------------------

What Google documents (https://cloud.google.com/pubsub/docs/ordering, "Considerations when
using ordered messaging"; read in the stored localized copies of that page): messages published
with the same ordering key are expected to be received in order, messages of different keys in
no particular order. Under "Message redelivery": Pub/Sub delivers each message at least once,
and redelivering a message triggers the redelivery of all subsequent messages for that key,
even acknowledged ones; if a subscriber received 1, 2 and 3 of a key and 2 is redelivered
(because its ack deadline expired, or a best-effort acknowledgement was not persisted), 3 is
redelivered too. This may not hold when the subscription also has a dead-letter topic, because
forwarding to it is best effort, and messages written to a dead-letter topic lose their order.
Unacknowledged messages can delay delivery, of other keys as well around server restarts and
traffic changes. A Pub/Sub engineer describes the mechanism as a cursor per key that
acknowledgements advance and that redelivery replays from (news.ycombinator.com, item
24666546).

The behaviour chosen here is the documented one, "including acknowledged ones". The other
reading, replaying only the later messages not yet acknowledged, would make the outcome depend
on whether an acknowledgement of message 4 reaches the server before or after the nack of
message 3. A subscriber that settles messages concurrently (a driver acknowledging in
background batches; the official Python client's dispatcher, too, sends the acknowledgements of
a batch before its nacks) can get 4 acknowledged just before 3 is nacked: 4 would escape the
replay, and the subscriber would see 3 redelivered followed by 5.

So each key keeps a log of its messages from its first unacknowledged one (the cursor), in
publish order:

- Delivery: a Pull or StreamingPull response may carry several messages of one key, in publish
  order, as many as ``max_messages``, flow control and the byte budget allow, interleaved with
  other keys by publish order. A key's messages in circulation belong to one delivery at a
  time: while a key has leased messages, its later messages go only to the same StreamingPull
  stream; after a unary Pull nobody gets more of the key until those leases end (acknowledged,
  nacked or expired). A key with nothing outstanding goes to whichever Pull or stream asks
  first (the real service balances keys across streams).
- Acknowledgement: an acknowledged message leaves the log only when every earlier message of
  its key is acknowledged too; until then it is kept (and no longer counted as a backlog
  message) so that it can be replayed.
- Redelivery: when a message is nacked (ModifyAckDeadline 0) or its lease expires, the key is
  rewound to it: it and every later message of the key that was already delivered, whether
  still leased or already acknowledged, become undelivered again and go out again in publish
  order. Their leases are cancelled, so acknowledgements and deadline changes that arrive later
  with the old ack IDs are ignored and cannot lose the rewound messages; each redelivery counts
  as a delivery attempt. Earlier messages of the key that are still leased stay leased, and the
  replay follows the delivery rule above (to the stream holding them; after a unary Pull, once
  they are settled).
- Retry policy: the rewound key waits out the backoff of the message that failed before any of
  its messages goes out again.
- Dead-lettering: a message whose own lease fails on its last allowed attempt leaves the log
  for the dead-letter topic without rewinding the key, so the key moves on to the next message.
  Messages that were only carried along by a rewind are never dead-lettered for it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class LeaseOwner(Protocol):
    """Who holds a lease (a streaming pull session), told when the lease ends."""

    def lease_ended(self, size: int) -> None: ...


class Envelope:
    """A published message as one subscription sees it."""

    __slots__ = (
        "acked",
        "attempts",
        "lease",
        "message",
        "ordering_key",
        "published_at",
        "sequence",
        "settled",
        "size",
    )

    def __init__(self, message: Any, size: int, ordering_key: str, published_at: float) -> None:
        self.message = message
        self.size = size
        #: Empty unless the subscription orders messages and the message has a key.
        self.ordering_key = ordering_key
        #: Wall-clock publish time, for retention.
        self.published_at = published_at
        #: Deliveries so far; exact here, best effort in the real service.
        self.attempts = 0
        #: Publish order within the subscription, set by DeliveryQueue.enqueue.
        self.sequence = 0
        #: The outstanding lease of a keyed message (None for messages without a key).
        self.lease: Lease | None = None
        #: A keyed message acknowledged while an earlier message of its key is not.
        self.acked = False
        #: Acknowledged, dead-lettered or dropped by retention: no longer in the backlog.
        #: The subscription's history (for Seek and snapshots) reads this.
        self.settled = False


class Lease:
    __slots__ = ("ack_id", "deadline", "envelope", "owner")

    def __init__(self, ack_id: str, envelope: Envelope, deadline: float, owner: LeaseOwner | None):
        self.ack_id = ack_id
        self.envelope = envelope
        self.deadline = deadline
        self.owner = owner


class KeyLog:
    """One ordering key's messages from its first unacknowledged one, in publish order."""

    __slots__ = ("entries", "held_until", "leased", "owner", "queued", "sent")

    def __init__(self) -> None:
        self.entries: deque[Envelope] = deque()
        #: entries[:sent] were delivered (leased, or acknowledged behind an unacknowledged
        #: one); entries[sent:] wait for delivery.
        self.sent = 0
        #: Outstanding leases among entries[:sent], all held by ``owner``.
        self.leased = 0
        #: The stream holding those leases; None for unary Pulls, which nobody else may follow.
        self.owner: LeaseOwner | None = None
        #: Monotonic time until which a retry backoff holds the key back; 0 when not held.
        self.held_until = 0.0
        #: Sequence of the newest heap entry pushed for this key; -1 when none is known.
        self.queued = -1

    def head(self) -> Envelope | None:
        """The next message to deliver, if any."""
        return self.entries[self.sent] if self.sent < len(self.entries) else None

    def open_to(self, owner: LeaseOwner | None) -> bool:
        """Whether ``owner`` (a stream, or None for a unary Pull) may take the next message."""
        return (
            not self.held_until
            and self.sent < len(self.entries)
            and (not self.leased or (owner is not None and self.owner is owner))
        )

    def open_to_anyone(self) -> bool:
        return (
            not self.held_until
            and self.sent < len(self.entries)
            and not (self.leased and self.owner is None)
        )


class DeliveryQueue:
    def __init__(self, ack_ids: Iterator[int]) -> None:
        self._ack_ids = ack_ids
        self._sequence = itertools.count(1)
        #: Messages without an ordering key, ready for delivery.
        self._ready: deque[Envelope] = deque()
        #: Messages without an ordering key waiting out a retry backoff.
        self._parked = 0
        self._keys: dict[str, KeyLog] = {}
        #: (sequence of a key's next message, key): the keys that may have something to deliver.
        #: Entries go stale when the key's next message changes; they are checked when popped.
        #: Equal sequences mean the same envelope and so the same KeyLog, so tuples never
        #: compare KeyLogs by order.
        self._key_heap: list[tuple[int, KeyLog]] = []
        #: Keyed messages not acknowledged: waiting, leased or held back by a backoff.
        self._keyed_unacked = 0
        self._keyed_leases = 0
        self.leases: dict[str, Lease] = {}

    def __len__(self) -> int:
        """Messages neither acknowledged nor dead-lettered (nor dropped by retention)."""
        unkeyed_leases = len(self.leases) - self._keyed_leases
        return len(self._ready) + self._parked + unkeyed_leases + self._keyed_unacked

    def has_ready(self) -> bool:
        """False when nothing can be delivered; True when something may be."""
        return bool(self._ready) or bool(self._key_heap)

    def enqueue(self, envelope: Envelope) -> None:
        envelope.sequence = next(self._sequence)
        key = envelope.ordering_key
        if not key:
            self._ready.append(envelope)
            return
        log = self._keys.get(key)
        if log is None:
            log = self._keys[key] = KeyLog()
        log.entries.append(envelope)
        self._keyed_unacked += 1
        if log.sent == len(log.entries) - 1:
            self._queue_key(log)

    # --- delivery -----------------------------------------------------------------------------

    def deliver(
        self,
        max_messages: int,
        max_bytes: int,
        oldest_allowed: float,
        at_least_one: bool,
        deadline: float,
        owner: LeaseOwner | None,
    ) -> list[Lease]:
        """Lease up to max_messages messages within max_bytes to ``owner``, oldest first.

        With ``at_least_one``, a first message larger than max_bytes is still taken, so that a
        big message cannot block a subscriber forever. Messages published before
        ``oldest_allowed`` have outlived the retention period and are dropped on the way out.
        """
        leases: list[Lease] = []
        total = 0
        ready = self._ready
        heap = self._key_heap
        passed_over: list[tuple[int, KeyLog]] = []
        # Keys this delivery has started on: it may carry more of them even after a unary Pull.
        started: set[KeyLog] = set()
        while len(leases) < max_messages:
            log = self._next_key(owner, started, passed_over)
            envelope = log.head() if log is not None else None
            if envelope is None or (ready and ready[0].sequence < envelope.sequence):
                if not ready:
                    break
                log, envelope = None, ready[0]
            if envelope.published_at < oldest_allowed:
                self._drop_expired(envelope, log)
                continue
            if total + envelope.size > max_bytes and (leases or not at_least_one):
                break
            if log is None:
                ready.popleft()
            else:
                heapq.heappop(heap)
                log.queued = -1
                log.sent += 1
                started.add(log)
                self._queue_key(log, force=True)
            leases.append(self._lease(envelope, deadline, owner, log))
            total += envelope.size
        for entry in passed_over:
            heapq.heappush(heap, entry)
        return leases

    def _next_key(
        self,
        owner: LeaseOwner | None,
        started: set[KeyLog],
        passed_over: list[tuple[int, KeyLog]],
    ) -> KeyLog | None:
        """The key whose next message is oldest among those ``owner`` may take, left on top."""
        heap = self._key_heap
        while heap:
            sequence, log = heap[0]
            head = log.head()
            if head is None or head.sequence != sequence:
                heapq.heappop(heap)  # stale: the key's next message has changed since
                if log.queued == sequence:
                    log.queued = -1
                continue
            if log in started or log.open_to(owner):
                return log
            heapq.heappop(heap)
            if log.open_to_anyone():
                passed_over.append((sequence, log))  # another stream's key keeps its place
            else:
                log.queued = -1  # held back; queued again when that changes
        return None

    def _queue_key(self, log: KeyLog, force: bool = False) -> None:
        """Put the key's next message up for delivery, unless it already is or cannot go."""
        head = log.head()
        if head is None or log.queued == head.sequence:
            return
        if not force and not log.open_to_anyone():
            return
        log.queued = head.sequence
        heapq.heappush(self._key_heap, (head.sequence, log))

    def _lease(
        self, envelope: Envelope, deadline: float, owner: LeaseOwner | None, log: KeyLog | None
    ) -> Lease:
        envelope.attempts += 1
        lease = Lease(str(next(self._ack_ids)), envelope, deadline, owner)
        self.leases[lease.ack_id] = lease
        if log is not None:
            envelope.lease = lease
            log.leased += 1
            log.owner = owner
            self._keyed_leases += 1
        return lease

    def _drop_expired(self, envelope: Envelope, log: KeyLog | None) -> None:
        """Retention is over for the next message: it goes without being delivered."""
        envelope.settled = True
        if log is None:
            self._ready.popleft()
            return
        heapq.heappop(self._key_heap)
        log.queued = -1
        del log.entries[log.sent]
        self._keyed_unacked -= 1
        self._settle_key(envelope.ordering_key, log)

    # --- ending leases ------------------------------------------------------------------------

    def end_lease(self, ack_id: str) -> Lease | None:
        """Forget a lease; None when the ack ID is unknown, settled, expired or rewound.

        The caller then acknowledges, rewinds, requeues, parks or drops the envelope.
        """
        lease = self.leases.pop(ack_id, None)
        if lease is not None:
            self._lease_gone(lease)
        return lease

    def _lease_gone(self, lease: Lease) -> None:
        envelope = lease.envelope
        if lease.owner is not None:
            lease.owner.lease_ended(envelope.size)
        if envelope.ordering_key:
            envelope.lease = None
            self._keys[envelope.ordering_key].leased -= 1
            self._keyed_leases -= 1

    def acknowledge(self, envelope: Envelope) -> None:
        """The envelope's lease ended with an acknowledgement."""
        envelope.settled = True
        key = envelope.ordering_key
        if not key:
            return
        envelope.acked = True
        self._keyed_unacked -= 1
        self._settle_key(key, self._keys[key])

    def drop(self, envelope: Envelope) -> None:
        """The envelope is gone for good (dead-lettered); its key moves on."""
        envelope.settled = True
        key = envelope.ordering_key
        if not key:
            return
        log = self._keys.get(key)
        if log is None:
            return
        try:
            index = log.entries.index(envelope)
        except ValueError:
            return
        if envelope.lease is not None:
            self._cancel(envelope.lease)
        del log.entries[index]
        if index < log.sent:
            log.sent -= 1
        if not envelope.acked:
            self._keyed_unacked -= 1
        self._settle_key(key, log)

    def _settle_key(self, key: str, log: KeyLog) -> None:
        """Advance the key's cursor past acknowledged messages; forget the key once empty."""
        entries = log.entries
        while entries and entries[0].acked:
            entries.popleft()
            log.sent -= 1
        if entries:
            self._queue_key(log)
        elif self._keys.get(key) is log:
            del self._keys[key]

    def rewind(self, envelope: Envelope, hold_until: float) -> bool:
        """A keyed envelope failed (nack or expiry): replay its key from it, in publish order.

        Every later message of the key that was delivered, leased or acknowledged, becomes
        undelivered again; outstanding leases among them are cancelled. With ``hold_until``
        (monotonic), nothing of the key goes out before then. Returns True when that is later
        than the key's current hold, so the caller must call :meth:`release_key` at that time.
        """
        log = self._keys.get(envelope.ordering_key)
        if log is None:
            return False
        try:
            index = log.entries.index(envelope)
        except ValueError:
            return False
        if index < log.sent:
            for later in itertools.islice(log.entries, index, log.sent):
                if later.lease is not None:
                    self._cancel(later.lease)
                if later.acked:
                    later.acked = later.settled = False
                    self._keyed_unacked += 1
            log.sent = index
        later_hold = hold_until > log.held_until
        if later_hold:
            log.held_until = hold_until
        self._queue_key(log)
        return later_hold

    def _cancel(self, lease: Lease) -> None:
        del self.leases[lease.ack_id]
        self._lease_gone(lease)

    def release_key(self, key: str, now: float) -> bool:
        """Timer: end the key's retry backoff if it is over; True when the key was released."""
        log = self._keys.get(key)
        if log is None or not log.held_until or log.held_until > now:
            return False
        log.held_until = 0.0
        self._queue_key(log)
        return True

    # --- messages without a key ---------------------------------------------------------------

    def requeue(self, envelopes: Iterable[Envelope]) -> None:
        """Make unkeyed envelopes deliverable again, ahead of the rest, keeping their order."""
        self._ready.extendleft(reversed(list(envelopes)))

    def park(self, envelopes: list[Envelope]) -> None:
        """Unkeyed envelopes wait out a retry backoff (still counted as backlog)."""
        self._parked += len(envelopes)

    def unpark(self, envelopes: list[Envelope]) -> None:
        """Their backoff is over: deliverable again, ahead of the rest."""
        self._parked -= len(envelopes)
        self.requeue(envelopes)
