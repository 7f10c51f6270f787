"""A circuit breaker per handler: stop pulling while the downstream system is failing.

Closed (normal) -> open after ``failure_ratio`` of at least ``min_calls`` handler runs
within ``window`` seconds failed -> after ``cool_down`` seconds, half-open: one lane
may take one message (the probe) -> the next outcome closes the circuit (success) or
opens it again (failure). While it is open no lane receives, so messages stay in the
queue instead of being burned through retries into the dead-letter destination.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidArgument
from ._counters import Counters

__all__ = ["Breaker", "BreakerState", "CircuitBreaker"]

log = logging.getLogger("cloudqueue.worker")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """When to stop pulling for a handler: ``failure_ratio`` (0..1] of at least
    ``min_calls`` runs within the last ``window`` seconds failed. Then nothing is
    received for ``cool_down`` seconds, after which one message probes the downstream.

    A failure is a handler exception other than :class:`DoNotRetry` and the handler's
    ``dead_letter_on`` classes: those condemn one message, not the downstream system.
    """

    failure_ratio: float = 0.5
    window: float = 60.0
    min_calls: int = 10
    cool_down: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.failure_ratio, bool) or not (
            isinstance(self.failure_ratio, int | float) and 0 < self.failure_ratio <= 1
        ):
            raise InvalidArgument(f"failure_ratio must be in (0, 1], not {self.failure_ratio!r}")
        for name in ("window", "cool_down"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument(f"{name} must be a number of seconds > 0, not {value!r}")
        if type(self.min_calls) is not int or self.min_calls < 1:
            raise InvalidArgument(f"min_calls must be a positive int, not {self.min_calls!r}")


class Breaker:
    """The running state of one handler's :class:`CircuitBreaker` (thread-safe)."""

    def __init__(
        self, config: CircuitBreaker, source: str, counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.source = source
        self.counters = counters
        self._clock = clock
        self._lock = threading.Lock()
        self.state = BreakerState.CLOSED
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, failed), within the window
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False  # a lane holds the one probe of this half-open spell

    def admit(self) -> tuple[float, bool]:
        """May a lane receive now? ``(0.0, probe)`` when it may, else ``(seconds, False)``
        to wait before asking again. ``probe`` is True for the one lane admitted while
        half-open: it receives a single message, and calls :meth:`unused` if none came."""
        with self._lock:
            if self.state is BreakerState.CLOSED:
                return 0.0, False
            if self.state is BreakerState.OPEN:
                left = self._opened_at + self.config.cool_down - self._clock()
                if left > 0:
                    return left, False
                self._change(BreakerState.HALF_OPEN, "cool-down over; probing with one message")
            if self._probing:
                return self.config.cool_down, False  # the probe's outcome decides; ask again
            self._probing = True
            return 0.0, True

    def unused(self) -> None:
        """The probe's receive brought nothing: let the next lane probe."""
        with self._lock:
            self._probing = False

    def record(self, failed: bool) -> None:
        """Count one handler run; may open or close the circuit."""
        with self._lock:
            now = self._clock()
            if self.state is BreakerState.HALF_OPEN:
                self._probing = False
                if failed:
                    self._open(now, "the probe failed")
                else:
                    self._outcomes.clear()
                    self._failures = 0
                    self._change(BreakerState.CLOSED, "the probe succeeded")
                return
            if self.state is BreakerState.OPEN:
                return  # runs received before it opened: the verdict is already in
            self._outcomes.append((now, failed))
            self._failures += failed
            horizon = now - self.config.window
            while self._outcomes and self._outcomes[0][0] < horizon:
                self._failures -= self._outcomes.popleft()[1]
            calls = len(self._outcomes)
            if calls >= self.config.min_calls and self._failures >= self.config.failure_ratio * calls:
                why = f"{self._failures} of {calls} runs in the last {self.config.window:g}s failed"
                self._open(now, why)

    @property
    def is_open(self) -> bool:
        """Open or half-open: failures now are blamed on the downstream system."""
        return self.state is not BreakerState.CLOSED

    def _open(self, now: float, why: str) -> None:
        self._opened_at = now
        self._outcomes.clear()
        self._failures = 0
        self._change(BreakerState.OPEN, f"{why}; not receiving for {self.config.cool_down:g}s")

    def _change(self, state: BreakerState, why: str) -> None:
        self.state = state
        self.counters.count_event(f"circuit_{state.value}")
        level = logging.WARNING if state is BreakerState.OPEN else logging.INFO
        log.log(level, "circuit for %s is %s: %s", self.source, state.value.replace("_", "-"), why)
