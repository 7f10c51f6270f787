"""The native half of a redrive: dead letters moved in place by the provider
(:meth:`cloudqueue.driver.SubscriptionDriver.move_dead_letters`), where a run's
options allow it, before the portable engine deals with whatever is left.

Measured why (bench/bench_ops.py): on memory and SQLite a portable redrive spends
three times the batched send's work per message (a receive through the consumer,
the send through the producer's checks, an ack), and building and checking each
message alone cost about twice what the whole batched send costs. A move in place
stamps the same attributes and checks only what a redrive can change (see
:meth:`~cloudqueue.driver.RedriveStamp.accepts`).
"""

from __future__ import annotations

from collections.abc import Callable

from .._message import Message
from ..driver import Capabilities, RedriveStamp, SubscriptionDriver, TopicDriver
from ..errors import QueueError
from ..wire import REDRIVE_ATTRIBUTES
from ._resend import validate_alone

__all__ = ["can_move_in_place", "move_in_place"]


def can_move_in_place(
    source: SubscriptionDriver, target: TopicDriver, target_capabilities: Capabilities,
    where: str,
) -> bool:
    """Whether a move in place gives exactly what the portable redrive would: the
    provider can do it, the target adds no deduplication id, and the target has the
    limits the dead letters met when they were sent and takes the provenance names."""
    if target_capabilities.deduplication:
        return False  # a redriven message gets an id derived from its dead letter's
    if source.capabilities.limits != target_capabilities.limits:
        return False
    probe = Message(b"", attributes=dict.fromkeys(REDRIVE_ATTRIBUTES, "x"))
    try:
        validate_alone(probe, target_capabilities, target.measure, where)
    except QueueError:
        return False  # the portable redrive reports each refusal
    return source.can_move_dead_letters(target)


async def move_in_place(
    source: SubscriptionDriver, target: TopicDriver, *, batch: int, limit: int | None,
    stamp: Callable[[], RedriveStamp], moved: Callable[[list[str | None]], None],
) -> int:
    """Move batches until one moves nothing or ``limit`` is reached; ``moved`` is
    told each batch's reasons. Returns how many moved."""
    total = 0
    while limit is None or total < limit:
        asked = batch if limit is None else min(batch, limit - total)
        reasons = await source.amove_dead_letters(target, asked, stamp())
        if not reasons:
            break
        total += len(reasons)
        moved(reasons)
    return total
