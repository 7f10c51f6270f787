"""Bounded exponential backoff with jitter, and batch calls that retry per entry."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Internal, InvalidArgument, QueueError, Unknown
from .effects import Op, Sleep, Step

__all__ = ["RetryPolicy", "batch_call", "retry_single", "single_call"]

log = logging.getLogger("cloudqueue")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the portable layer retries errors whose ``retryable`` flag is set.

    Delays grow from ``initial`` by ``multiplier`` up to ``maximum`` seconds,
    each shortened by a random fraction up to ``jitter`` so that many clients do
    not retry in step. Retrying stops once ``deadline`` seconds have passed
    since the first failure; the last error is then raised or reported.
    """

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    deadline: float = 60.0

    def __post_init__(self) -> None:
        for name, low, high in (
            ("initial", 0.0, math.inf), ("maximum", 0.0, math.inf), ("multiplier", 1.0, math.inf),
            ("jitter", 0.0, 1.0), ("deadline", 0.0, math.inf),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not low <= value <= high or math.isinf(value)
            ):
                limit = f"from {low:g} to {high:g}" if high < math.inf else f">= {low:g}"
                raise InvalidArgument(
                    f"RetryPolicy {name} must be a finite number {limit}, not {value!r:.60}"
                )

    def delays(self) -> Iterator[float]:
        give_up_at = time.monotonic() + self.deadline
        delay = self.initial
        while True:
            wait = delay * (1.0 - self.jitter * random.random())
            if time.monotonic() + wait > give_up_at:
                return
            yield wait
            delay = min(delay * self.multiplier, self.maximum)



def single_call(policy: RetryPolicy, method: Op, *args: Any) -> Step[Any]:
    """The driver method ``method`` called with ``args``, retried while its error is retryable."""
    try:
        return (yield (method, args))
    except Exception as error:
        failure = error  # retried outside the except clause, so nothing chains to it
    return (yield from retry_single(policy, method, args, failure))


def retry_single(policy: RetryPolicy, method: Op, args: tuple[Any, ...], error: Exception) -> Step[Any]:
    """What :func:`single_call` does once the first attempt failed with ``error``.
    Hot paths make the first attempt themselves (one generator less per call)
    and hand a failure to this."""
    delays = policy.delays()  # the deadline counts from the first failure
    while True:
        if not isinstance(error, QueueError):
            raise _foreign(method, error) from error
        if not error.retryable:
            raise error
        delay = next(delays, None)
        if delay is None:
            raise error
        log.debug("retrying %s in %.2fs after %r", method.name.lower(), delay, error)
        yield Sleep(delay)
        try:
            return (yield (method, args))
        except Exception as again:
            error = again


def batch_call(policy: RetryPolicy, method: Op, entries: Sequence[Any]) -> Step[list[Any]]:
    """The driver method ``method`` called with ``entries``, for a batch method with per-entry outcomes.

    Returns one outcome per entry: the driver's value, or a ``QueueError``.
    Entries that failed with a retryable error are sent again (alone) with
    backoff; a failure of the whole call counts as a failure of every entry.
    """
    # The common case first: one call, every entry done. The first attempt is
    # written out rather than a generator of its own: one layer less on every
    # send and settlement.
    try:
        first = yield (method, (entries,))
    except Exception as error:
        first = _whole_call_failed(method, error, len(entries))
    if first is None:
        return [None] * len(entries)
    if len(first) == len(entries):
        for outcome in first:
            if isinstance(outcome, QueueError) and outcome.retryable:
                break
        else:
            return list(first)
    # Some entries failed retryably (or the answer was malformed): retry those.
    outcomes: list[Any] = [None] * len(entries)
    todo = list(range(len(entries)))
    delays = policy.delays()  # the deadline counts from the first failure
    answer: Any = first
    while True:
        if answer is None:
            answer = [None] * len(todo)
        elif len(answer) != len(todo):
            answer = [
                Internal(f"driver {method.name.lower()} answered {len(answer)} outcomes for {len(todo)}")
            ] * len(todo)
        again = []
        for index, outcome in zip(todo, answer, strict=True):
            outcomes[index] = outcome
            if isinstance(outcome, QueueError) and outcome.retryable:
                again.append(index)
        if not again:
            return outcomes
        delay = next(delays, None)
        if delay is None:
            return outcomes
        log.debug(
            "retrying %d of %d %s entries in %.2fs", len(again), len(entries), method.name.lower(), delay
        )
        todo = again
        yield Sleep(delay)
        retried = [entries[i] for i in todo]
        try:
            answer = yield (method, (retried,))
        except Exception as error:
            answer = _whole_call_failed(method, error, len(retried))


def _whole_call_failed(method: Op, error: Exception, count: int) -> list[QueueError]:
    """A failure of a whole batch call, as every entry's outcome."""
    if not isinstance(error, QueueError):
        error = _foreign(method, error)
    return [error] * count


def _foreign(method: Op, error: Exception) -> QueueError:
    """A driver raised something that is not a QueueError: a driver bug, wrapped."""
    wrapped = Unknown(f"driver {method.name.lower()} raised {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped
