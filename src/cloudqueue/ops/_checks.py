"""Checking the arguments of the operations functions before anything is received."""

from __future__ import annotations

import math
from collections.abc import Callable

from ..errors import InvalidArgument
from ..filters import Filter

__all__ = [
    "MAX_LIMIT",
    "MAX_PEEK",
    "MAX_RATE",
    "check_flag",
    "check_limit",
    "check_max_messages",
    "check_progress",
    "check_rate",
    "check_where",
]

#: Most messages one peek returns: Service Bus peeks at most this many per call too.
MAX_PEEK = 1000
#: Highest ``rate`` (messages per second) accepted; above it, leave ``rate`` out.
MAX_RATE = 1_000_000.0
#: Highest ``limit`` accepted: far beyond what any queue holds.
MAX_LIMIT = 10**12


def check_max_messages(max_messages: object) -> int:
    if type(max_messages) is not int or not 1 <= max_messages <= MAX_PEEK:
        raise InvalidArgument(
            f"max_messages must be an int from 1 to {MAX_PEEK}, not {max_messages!r:.60}"
        )
    return max_messages


def check_limit(limit: object) -> int | None:
    if limit is not None and (type(limit) is not int or not 1 <= limit <= MAX_LIMIT):
        raise InvalidArgument(
            f"limit must be None or an int from 1 to {MAX_LIMIT}, not {limit!r:.60}"
        )
    return limit


def check_rate(rate: object) -> float | None:
    if rate is None:
        return None
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or not 0 < rate <= MAX_RATE
    ):
        raise InvalidArgument(
            f"rate must be None or messages per second above 0 and at most {MAX_RATE:g}, "
            f"not {rate!r:.60}"
        )
    return float(rate)


def check_where(where: object) -> Filter | Callable[..., object] | None:
    if where is None or isinstance(where, Filter) or callable(where):
        return where
    raise InvalidArgument(
        "where must be None, a cloudqueue.filters.Filter (built with where()) or a "
        f"function taking a PeekedMessage and returning a bool, not {type(where).__name__}"
    )


def check_flag(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise InvalidArgument(f"{name} must be True or False, not {value!r:.60}")
    return value


def check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise InvalidArgument(
            "progress must be None or a function taking a RedriveReport, "
            f"not {type(progress).__name__}"
        )
