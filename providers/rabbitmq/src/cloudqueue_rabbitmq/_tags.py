"""The delivery tags of one consumer channel that are not settled yet, so that a batch of
acks can be one ``basic.ack`` with ``multiple`` set where that acks nothing else.

``multiple`` acks every unsettled delivery of the channel up to the tag, so it may only
cover tags that are all in the batch: a delivery still held by the application, waiting
in the prefetch buffer, or whose lease-expiry ``nack`` is not yet queued must stay out.
RabbitMQ numbers a channel's deliveries 1, 2, 3, ...; while every number up to the highest
seen has been seen, no unseen delivery can hide below a covered tag. Measured: a batch of
100 acks awaited one by one kept the loop busy for most of the receive side.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["OpenTags"]


class OpenTags:
    """Tags delivered on the current channel whose settlement frame is not queued yet."""

    __slots__ = ("_highest", "_open", "_seen")

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._seen = 0
        self._highest = 0

    def delivered(self, tag: int) -> None:
        self._open.add(tag)
        self._seen += 1
        if tag > self._highest:
            self._highest = tag

    def settled(self, tags: Collection[int]) -> None:
        """Their settlement frames are queued on the channel, ahead of any later one."""
        self._open.difference_update(tags)

    def cover(self, tags: Collection[int]) -> int:
        """The highest tag of ``tags`` that ``basic.ack(multiple=True)`` may name: every
        open tag up to it is in ``tags``. 0 when there is none."""
        if self._seen != self._highest:
            return 0  # some tag was not seen (yet): nothing proves what lies below
        batch = set(tags)
        others = self._open - batch
        floor = min(others) if others else self._highest + 1
        return max((tag for tag in batch if tag < floor and tag in self._open), default=0)

    def reset(self) -> None:
        """A new channel numbers its deliveries from 1 again."""
        self._open.clear()
        self._seen = 0
        self._highest = 0
