"""Operations: queue statistics, peek, dead letters and redrive, on every provider.

::

    from cloudqueue import ops

    ops.stats("sqs://…/orders")                    # QueueStats: depth, in flight, dead letters
    ops.peek("memory://orders", max_messages=5)    # read without settling
    ops.dead_letters("memory://orders")            # the dead letters of a queue, with reasons
    ops.redrive(cloudqueue.dead_letter_url("memory://orders"), rate=100)

The same coroutines are in :mod:`cloudqueue.aio` (``await aio.redrive(...)``). These
blocking functions run them on a private event loop in a helper thread, so they work
from inside a running event loop too. docs/operations.md says what each provider knows
and guarantees.
"""

from __future__ import annotations

from collections.abc import Callable

from .._sdk import SdkObjects
from ..filters import Filter
from . import _inspect, _redrive
from ._bridge import run_blocking
from ._types import DeadLetterFacts, PeekedMessage, QueueStats, RedriveFailure, RedriveReport

__all__ = [
    "DeadLetterFacts",
    "PeekedMessage",
    "QueueStats",
    "RedriveFailure",
    "RedriveReport",
    "dead_letters",
    "peek",
    "redrive",
    "stats",
]


def stats(url: str, *, sdk: SdkObjects | None = None) -> QueueStats:
    """How many messages the queue or subscription ``url`` holds, as its provider knows
    (None where it cannot; ``exact`` False for approximations). ``sdk``, here and below:
    your own SDK objects, as for :func:`cloudqueue.open_producer`."""
    return run_blocking(_inspect.stats(url, sdk=sdk), "stats")


def peek(
    url: str, max_messages: int = 10, *, sdk: SdkObjects | None = None
) -> list[PeekedMessage]:
    """Up to ``max_messages`` (1 to 1000) messages of ``url`` read without settling them.

    Native where the provider can peek; elsewhere received, held and given back, which
    raises each one's delivery count by one, and refused with Unsupported on ordered
    destinations (holding a message would block its ordering key).
    """
    return run_blocking(_inspect.peek(url, max_messages, sdk=sdk), "peek")


def dead_letters(
    url: str, max_messages: int = 10, *, sdk: SdkObjects | None = None
) -> list[PeekedMessage]:
    """Up to ``max_messages`` dead letters of the queue or subscription ``url`` (the source,
    not the dead-letter queue), each with :attr:`PeekedMessage.dead_letter` facts."""
    return run_blocking(_inspect.dead_letters(url, max_messages, sdk=sdk), "dead_letters")


def redrive(
    dead_letter_url: str,
    to: str | None = None,
    *,
    limit: int | None = None,
    rate: float | None = None,
    where: Filter | Callable[[PeekedMessage], bool] | None = None,
    dry_run: bool = False,
    progress: Callable[[RedriveReport], None] | None = None,
    sdk: SdkObjects | None = None,
) -> RedriveReport:
    """Move the dead letters of ``dead_letter_url`` back to their source, or to ``to``.

    Each message keeps its body bytes, attributes (dead-letter markers removed) and
    ordering key, and gains the provenance attributes of
    :data:`cloudqueue.wire.REDRIVE_ATTRIBUTES`. Each is sent first and removed from
    the dead-letter queue only once the send is confirmed: an interrupted run can
    duplicate, never lose. A provider that can move dead letters in place (memory,
    SQLite: see ``SubscriptionDriver.move_dead_letters``) moves them in one step instead,
    with the same attributes and report, when no ``where``, ``rate`` or ``dry_run`` is
    asked and the target adds no deduplication id. On a target that drops duplicates the message gets a
    deduplication id derived from its dead letter's id, so a retried redrive is
    dropped and the original's id never blocks it.

    ``limit``: stop after moving this many. ``rate``: at most this many messages per
    second. ``where``: move only messages this :class:`~cloudqueue.filters.Filter`
    matches (on their attributes) or this predicate accepts (given a
    :class:`PeekedMessage`); the others stay. ``dry_run``: count what would move, move
    nothing. ``progress`` is called with the report so far after each batch (from the
    helper thread). The run ends when the dead-letter queue gives nothing for about 2
    seconds; it holds back at most 10,000 messages it does not move (skipped, refused
    or beyond the limit), then ends, and a second run reaches the rest. ``sdk``: your
    own SDK objects, used for the dead-letter queue and the target alike.
    """
    return run_blocking(
        _redrive.redrive(
            dead_letter_url, to, limit=limit, rate=rate, where=where, dry_run=dry_run,
            progress=progress, sdk=sdk,
        ),
        "redrive",
    )
