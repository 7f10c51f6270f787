"""One subscription's messages: the ready queue, ordering-key queues and leases.

Nothing here locks or waits: the broker in ``_state`` calls these methods while it holds its
lock, and decides what an ended lease means (redelivery, backoff, dead-lettering).

Ordering: for a subscription with message ordering, each ordering key keeps its own queue and
only the head of that queue is ever in circulation (ready, leased or backing off). The next
message of a key is released only when the head is acknowledged (or dead-lettered), so a nacked
or expired head comes back before every later message of its key, in publish order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class LeaseOwner(Protocol):
    """Who holds a lease (a streaming pull session), told when the lease ends."""

    def lease_ended(self, size: int) -> None: ...


class Envelope:
    """A published message as one subscription sees it."""

    __slots__ = ("attempts", "message", "ordering_key", "published_at", "size")

    def __init__(self, message: Any, size: int, ordering_key: str, published_at: float) -> None:
        self.message = message
        self.size = size
        #: Empty unless the subscription orders messages and the message has a key.
        self.ordering_key = ordering_key
        #: Wall-clock publish time, for retention.
        self.published_at = published_at
        #: Deliveries so far; exact here, best effort in the real service.
        self.attempts = 0


class Lease:
    __slots__ = ("ack_id", "deadline", "envelope", "owner")

    def __init__(self, ack_id: str, envelope: Envelope, deadline: float, owner: LeaseOwner | None):
        self.ack_id = ack_id
        self.envelope = envelope
        self.deadline = deadline
        self.owner = owner


class DeliveryQueue:
    def __init__(self, ack_ids: Iterator[int]) -> None:
        self._ack_ids = ack_ids
        self._ready: deque[Envelope] = deque()
        self._key_queues: dict[str, deque[Envelope]] = {}
        self.leases: dict[str, Lease] = {}

    def __len__(self) -> int:
        """Messages neither acknowledged nor dead-lettered."""
        waiting_behind_heads = sum(len(queue) - 1 for queue in self._key_queues.values())
        return len(self._ready) + len(self.leases) + waiting_behind_heads

    def has_ready(self) -> bool:
        return bool(self._ready)

    def enqueue(self, envelope: Envelope) -> None:
        key = envelope.ordering_key
        if key:
            queue = self._key_queues.get(key)
            if queue is not None:
                queue.append(envelope)
                return
            self._key_queues[key] = deque((envelope,))
        self._ready.append(envelope)

    def take(
        self, max_messages: int, max_bytes: int, oldest_allowed: float, at_least_one: bool
    ) -> list[Envelope]:
        """Up to max_messages ready envelopes within max_bytes.

        With ``at_least_one``, a first envelope larger than max_bytes is still taken, so that a
        big message cannot block a subscriber forever.

        Envelopes published before ``oldest_allowed`` have outlived the retention period and are
        dropped on the way out.
        """
        taken: list[Envelope] = []
        total = 0
        ready = self._ready
        while ready and len(taken) < max_messages:
            envelope = ready[0]
            if envelope.published_at < oldest_allowed:
                ready.popleft()
                self.finish(envelope)
                continue
            if total + envelope.size > max_bytes and (taken or not at_least_one):
                break
            ready.popleft()
            taken.append(envelope)
            total += envelope.size
        return taken

    def lease(self, envelope: Envelope, deadline: float, owner: LeaseOwner | None) -> Lease:
        envelope.attempts += 1
        lease = Lease(str(next(self._ack_ids)), envelope, deadline, owner)
        self.leases[lease.ack_id] = lease
        return lease

    def end_lease(self, ack_id: str) -> Lease | None:
        """Forget a lease; None when the ack ID is unknown, already settled or expired."""
        lease = self.leases.pop(ack_id, None)
        if lease is not None and lease.owner is not None:
            lease.owner.lease_ended(lease.envelope.size)
        return lease

    def finish(self, envelope: Envelope) -> None:
        """The envelope is gone for good (acked, dead-lettered, expired by retention)."""
        key = envelope.ordering_key
        if not key:
            return
        queue = self._key_queues[key]
        queue.popleft()
        if queue:
            self._ready.append(queue[0])
        else:
            del self._key_queues[key]

    def requeue(self, envelopes: Iterable[Envelope]) -> None:
        """Make envelopes deliverable again, ahead of the rest, keeping their order."""
        self._ready.extendleft(reversed(list(envelopes)))
