"""Per-key sequencing: at most one message of an ordering key in the application's hands.

Servers may return several messages of one ordering key in one batch, in order
(Pub/Sub does, SQS FIFO does for a message group, a Service Bus session does).
Handing them all out would let a handler ack the second while the first is nacked.
So the consumer engine keeps, per key, one *head* (buffered for hand-out, or handed
out and unsettled) and *parks* the followers that came with or after it: still leased
from the server, counted against ``max_in_flight``, extended like every held message.

- The head is acked or dead-lettered: the next parked follower becomes the head.
- The head is nacked, or its lease is lost: the key is *reset*. Its parked followers
  are given back at once (release), so the server delivers the key again from the
  head on, in order.
- While a key's give-backs are under way it is *draining*. A server may hand out a
  later message of the key before it has taken the earlier ones back (a Service Bus
  session skips the messages we still hold), so a message of a draining key that
  arrives is given back too, and so is one brought by a pull that was already under
  way when the drain began (``suspect_before``), even if it arrives after the drain.
  The consumer starts no new pull while a key drains, so once the drain is over every
  new pull sees the key from its first message again, in order.

Nothing here does I/O or locks: :class:`~cloudqueue._engine.consuming.ConsumerCore`
calls it under its runner's lock and sends the give-backs.
"""

from __future__ import annotations

import enum
from collections import deque

from ..driver import Delivery

__all__ = ["Admission", "KeyLines"]


class Admission(enum.Enum):
    """What to do with a freshly received message of an ordering key."""

    #: The key is free: hand this one out (it becomes the key's head).
    HEAD = enum.auto()
    #: The key has a head: wait behind it.
    PARK = enum.auto()
    #: The key is draining, or the pull that brought it is stale: give it back.
    GIVE_BACK = enum.auto()


# Members as module constants: a lookup on the enum class is slow in CPython 3.11.
_HEAD, _PARK, _GIVE_BACK = Admission.HEAD, Admission.PARK, Admission.GIVE_BACK


class KeyLines:
    __slots__ = ("_epoch", "_suspect_before", "draining", "heads", "parked")

    def __init__(self) -> None:
        #: key -> the one message of it buffered for hand-out or handed out.
        self.heads: dict[str, Delivery] = {}
        #: key -> its followers, in the order the server returned them.
        self.parked: dict[str, deque[Delivery]] = {}
        #: key -> give-backs (nacks, releases) of it not yet answered by the server.
        self.draining: dict[str, int] = {}
        #: key -> pulls numbered below this were under way when its last drain began.
        self._suspect_before: dict[str, int] = {}
        self._epoch = 0  # pulls started so far

    # -- pulls -------------------------------------------------------------------

    def pull_started(self) -> int:
        """Number the pull about to start; pass the number to :meth:`admit`."""
        epoch = self._epoch
        self._epoch = epoch + 1
        return epoch

    def no_pulls_under_way(self) -> None:
        """Every pull has returned: none can be suspect any more."""
        if self._suspect_before:
            self._suspect_before.clear()

    def admit(self, delivery: Delivery, key: str, epoch: int) -> Admission:
        if key in self.draining or self._suspect_before.get(key, -1) > epoch:
            self.giving_back(key)
            return _GIVE_BACK
        if key in self.heads:
            line = self.parked.get(key)
            if line is None:
                line = self.parked[key] = deque()
            line.append(delivery)
            return _PARK
        self.heads[key] = delivery
        return _HEAD

    # -- settlements ---------------------------------------------------------------

    def advance(self, delivery: Delivery, key: str) -> Delivery | None:
        """``delivery`` was acked or dead-lettered: if it was its key's head, the
        next parked follower (returned) becomes the head, or the key is free."""
        if self.heads.get(key) is not delivery:
            return None
        line = self.parked.get(key)
        if not line:
            del self.heads[key]
            return None
        follower = line.popleft()
        if not line:
            del self.parked[key]
        self.heads[key] = follower
        return follower

    def reset(self, delivery: Delivery, key: str) -> list[Delivery]:
        """``delivery`` was nacked or lost. If it is its key's head, free the key and
        return the parked followers, which the caller gives back; if it is a parked
        follower, return it and those behind it. Counted as draining."""
        if self.heads.get(key) is delivery:
            del self.heads[key]
            returned = list(self.parked.pop(key, ()))
        else:
            line = self.parked.get(key)
            if line is None or delivery not in line:
                return []
            position = line.index(delivery)
            returned = list(line)[position:]
            for _ in returned:
                line.pop()
            if not line:
                del self.parked[key]
        self.giving_back(key, len(returned))
        return returned

    def giving_back(self, key: str, count: int = 1) -> None:
        """``count`` messages of ``key`` are being given back (nacked or released)."""
        if not count:
            return
        under_way = self.draining.get(key)
        if under_way is None:
            self._suspect_before[key] = self._epoch  # pulls numbered below are under way
            under_way = 0
        self.draining[key] = under_way + count

    def given_back(self, key: str) -> None:
        """The server answered one give-back of ``key`` (whatever the outcome)."""
        left = self.draining.get(key)
        if left is None:
            return
        if left > 1:
            self.draining[key] = left - 1
        else:
            del self.draining[key]

    def is_parked(self, delivery: Delivery, key: str) -> bool:
        line = self.parked.get(key)
        return line is not None and delivery in line

    def take_all_parked(self) -> list[Delivery]:
        """Every parked message, in order per key (closing gives them back)."""
        parked = [delivery for line in self.parked.values() for delivery in line]
        self.parked.clear()
        self.heads.clear()
        return parked
