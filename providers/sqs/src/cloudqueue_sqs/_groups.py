"""One message per FIFO message group in a consumer's hands at a time.

SQS FIFO returns several messages of one group in a single ReceiveMessage batch
(``a4, a5, a6``). Handing them all out would let a handler ack ``a5`` while ``a4`` is
nacked, breaking the per-key order that the portable API promises. So the driver hands
out the first message of each group and *parks* the rest, still leased to us on SQS
(which keeps the group locked against other consumers). When the handed-out message is
acked or dead-lettered the next parked one becomes ready; when it is nacked, its parked
followers are given back too, so SQS redelivers the group from the nacked message on.

A parked message whose lease ends is dropped rather than handed out (SQS redelivers it,
in order), and so are the ones parked behind it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from cloudqueue.driver import Delivery

__all__ = ["GroupSequencer", "group_of"]

#: A parked message is only handed out while at least this much of its lease is left.
MIN_LEASE_LEFT = 0.5


def group_of(delivery: Delivery) -> str:
    return delivery.ordering_key or ""


class GroupSequencer:
    """Per-group bookkeeping of one subscription driver; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out: dict[str, Delivery] = {}  # group -> the one handed out
        self._parked: dict[str, deque[Delivery]] = {}
        self._ready: deque[str] = deque()  # groups whose next parked message may go out

    @property
    def has_parked(self) -> bool:
        return bool(self._parked)

    def admit(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """Of freshly received deliveries, those to hand out now; park the others."""
        out: list[Delivery] = []
        now = time.monotonic()
        with self._lock:
            for delivery in deliveries:
                group = group_of(delivery)
                holder = self._out.get(group)
                if holder is not None and _expired(holder, now, 0.0):
                    # Its lease ran out unsettled: SQS has moved on, so must we.
                    del self._out[group]
                    self._parked.pop(group, None)
                    holder = None
                if holder is None and group not in self._parked:
                    self._out[group] = delivery
                    out.append(delivery)
                else:
                    self._parked.setdefault(group, deque()).append(delivery)
        return out

    def take_ready(self, max_messages: int) -> list[Delivery]:
        """Parked messages whose group became free, at most ``max_messages``."""
        out: list[Delivery] = []
        now = time.monotonic()
        with self._lock:
            while self._ready and len(out) < max_messages:
                group = self._ready.popleft()
                line = self._parked.get(group)
                if not line:
                    continue
                delivery = line.popleft()
                if _expired(delivery, now, MIN_LEASE_LEFT):
                    del self._parked[group]  # it and those behind it come back from SQS
                    continue
                if not line:
                    del self._parked[group]
                self._out[group] = delivery
                out.append(delivery)
        return out

    def settled(self, deliveries: Iterable[Delivery]) -> None:
        """These were acked or dead-lettered: their groups may move on."""
        with self._lock:
            for delivery in deliveries:
                group = group_of(delivery)
                if self._out.get(group) is delivery:
                    del self._out[group]
                    if group in self._parked:
                        self._ready.append(group)

    def released(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """These were nacked: free their groups; return the parked followers to give back."""
        followers: list[Delivery] = []
        with self._lock:
            for delivery in deliveries:
                group = group_of(delivery)
                if self._out.get(group) is delivery:
                    del self._out[group]
                    followers.extend(self._parked.pop(group, ()))
        return followers

    def drain(self) -> list[Delivery]:
        """Every parked message (on close, to give back)."""
        with self._lock:
            parked = [d for line in self._parked.values() for d in line]
            self._parked.clear()
            self._ready.clear()
            self._out.clear()
        return parked


def _expired(delivery: Delivery, now: float, margin: float) -> bool:
    deadline = delivery.lease_deadline
    return deadline is not None and deadline - now < margin
