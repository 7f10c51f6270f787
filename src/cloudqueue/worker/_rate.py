"""Rate limits per handler: a token bucket that paces *receiving*.

A lane takes a token before it asks the consumer for a message, so a handler never
starts more often than the rate allows and the peak waits in the queue (where it is
durable and visible as depth) instead of in the worker's memory or the downstream
system. The limit is per worker process: N processes with ``rate="200/s"`` each make
up to N x 200/s together.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidArgument

__all__ = ["RateLimit", "TokenBucket", "rate_limit"]

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_SPEC = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")
_FORMAT = "'<count>/s' or '<count>/min' (e.g. '200/s', '90/min')"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` handler starts a second on average, and at most ``burst``
    at once after an idle spell (the bucket's size)."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (isinstance(self.per_second, int | float) and 0 < self.per_second < math.inf):
            raise InvalidArgument(f"a rate must be a positive number per second, not {self.per_second!r}")
        if type(self.burst) is not int or self.burst < 1:
            raise InvalidArgument(f"burst must be a positive int (messages at once), not {self.burst!r}")


def default_burst(per_second: float) -> int:
    """A tenth of a second's worth, at least 1: enough credit to make up for a lane
    that was late by that much (a busy machine), small enough not to be a spike."""
    return max(1, math.ceil(per_second / 10))


def rate_limit(spec: str | RateLimit, burst: int | None = None) -> RateLimit:
    """``"200/s"`` or ``"90/min"`` (and an optional burst) as a :class:`RateLimit`."""
    if isinstance(spec, RateLimit):
        return spec if burst is None else RateLimit(spec.per_second, burst)
    if not isinstance(spec, str):
        raise InvalidArgument(f"rate must be a string like {_FORMAT}, not {spec!r}")
    match = _SPEC.fullmatch(spec.lower())
    if match is None or match.group(2) not in _UNITS:
        raise InvalidArgument(f"rate must look like {_FORMAT}, not {spec!r}")
    per_second = float(match.group(1)) / _UNITS[match.group(2)]
    if per_second <= 0:
        raise InvalidArgument(f"rate must be more than 0, not {spec!r}")
    return RateLimit(per_second, default_burst(per_second) if burst is None else burst)


class TokenBucket:
    """Tokens accrue at ``per_second`` up to ``burst``; each handler start spends one.

    Thread-safe (thread lanes share it). The bucket starts full: a worker that starts
    on a full queue may begin with one burst.
    """

    __slots__ = ("_clock", "_lock", "_stamp", "_tokens", "burst", "per_second")

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = limit.per_second
        self.burst = limit.burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(limit.burst)
        self._stamp = clock()

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.per_second)
        self._stamp = now

    def take(self, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` whole tokens: ``(taken, 0.0)``, or ``(0, seconds)`` until
        one is there."""
        with self._lock:
            self._refill(self._clock())
            taken = min(wanted, int(self._tokens))
            if taken:
                self._tokens -= taken
                return taken, 0.0
            return 0, (1.0 - self._tokens) / self.per_second

    def give_back(self, unused: int) -> None:
        """Return tokens taken for messages that did not come (an empty receive)."""
        if unused > 0:
            with self._lock:
                self._tokens = min(float(self.burst), self._tokens + unused)
