"""What ``cloudqueue top`` remembers of each URL, and the figures it derives from that.

Pure: the samples carry their own (monotonic) times, so rates and sparklines are
functions of the history alone and tests feed them made-up samples.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..driver import QueueStats

__all__ = ["SPARK_BLOCKS", "History", "Rates", "Sample", "rates", "sparkline"]

#: Rates are averaged over the samples of the last this many seconds (at least two samples):
#: one refresh alone swings with every batch a producer sends.
RATE_WINDOW = 10.0
#: Eight heights; zero is the lowest block so that it differs from "no sample" (a space).
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one URL: its stats, or the error that came instead."""

    #: ``time.monotonic()`` when the reading was taken.
    at: float
    stats: QueueStats | None
    error: str | None = None


@dataclass(slots=True)
class History:
    """The readings of one URL, oldest first, trimmed to the last ``keep`` seconds."""

    label: str
    keep: float
    samples: deque[Sample] = field(default_factory=deque)

    def record(self, sample: Sample) -> None:
        self.samples.append(sample)
        while self.samples and self.samples[0].at < sample.at - self.keep:
            self.samples.popleft()

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    @property
    def latest_stats(self) -> QueueStats | None:
        """The newest stats read, even when later readings failed (shown as stale)."""
        for sample in reversed(self.samples):
            if sample.stats is not None:
                return sample.stats
        return None


@dataclass(frozen=True, slots=True)
class Rates:
    """Messages per second; None where the provider does not count or two readings are missing."""

    sent: float | None
    received: float | None
    #: Change of ``available`` per second: the one rate every provider with a depth allows.
    depth_change: float | None


def rates(samples: deque[Sample] | list[Sample], window: float = RATE_WINDOW) -> Rates:
    readings = [sample for sample in samples if sample.stats is not None]
    if len(readings) < 2:
        return Rates(None, None, None)
    newest = readings[-1]
    # The oldest reading inside the window, else the one just before the newest.
    base = next((s for s in readings[:-1] if s.at >= newest.at - window), readings[-2])
    elapsed = newest.at - base.at
    if elapsed <= 0:
        return Rates(None, None, None)
    assert newest.stats is not None and base.stats is not None
    return Rates(
        sent=_per_second(base.stats.total_sent, newest.stats.total_sent, elapsed, counter=True),
        received=_per_second(base.stats.total_received, newest.stats.total_received, elapsed, counter=True),
        depth_change=_per_second(base.stats.available, newest.stats.available, elapsed, counter=False),
    )


def _per_second(before: int | None, after: int | None, elapsed: float, *, counter: bool) -> float | None:
    if before is None or after is None:
        return None
    if counter and after < before:  # the destination was recreated: the counter restarted
        return None
    return (after - before) / elapsed


def sparkline(
    samples: deque[Sample] | list[Sample], now: float, *, width: int, bucket: float
) -> tuple[str, int]:
    """``available`` over the last ``width * bucket`` seconds, one character per bucket
    (its last reading; a space where there was none), scaled to the largest value shown,
    which is returned with it."""
    values: list[int | None] = [None] * width
    start = now - width * bucket
    for sample in samples:
        if sample.stats is None or sample.stats.available is None or sample.at <= start:
            continue
        index = min(width - 1, int((sample.at - start) / bucket))
        values[index] = sample.stats.available  # samples are in time order: the last one wins
    top = max((value for value in values if value is not None), default=0)
    return "".join(_block(value, top) for value in values), top


def _block(value: int | None, top: int) -> str:
    if value is None:
        return " "
    if value <= 0 or top <= 0:
        return SPARK_BLOCKS[0]
    # Any non-zero depth is at least the second block, so that "a few" never reads as "none".
    return SPARK_BLOCKS[1 + min(len(SPARK_BLOCKS) - 2, int(value / top * (len(SPARK_BLOCKS) - 1)))]
