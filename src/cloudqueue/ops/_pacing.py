"""The ``rate`` cap of a redrive: a token bucket that holds no burst.

Each call pays for its messages *before* they go: ``take(n)`` returns once the
bucket has earned ``n`` tokens since the previous payment, at ``rate`` tokens a
second. With no burst allowance, ``n`` messages never leave sooner than ``n / rate``
seconds after the run started, so the rate observed over any run, however short,
stays at or below the cap.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["TokenBucket", "chunk_for_rate"]


class TokenBucket:
    """Paces sends to ``rate`` messages per second (one per task; not thread-safe)."""

    __slots__ = ("_paid_until", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._paid_until = time.monotonic()

    def reserve(self, count: int) -> float:
        """Book ``count`` messages; the seconds to wait before sending them."""
        now = time.monotonic()
        self._paid_until = max(self._paid_until, now) + count / self.rate
        return self._paid_until - now

    async def take(self, count: int) -> None:
        """Wait until ``count`` more messages may go."""
        wait = self.reserve(count)
        if wait > 0:
            await asyncio.sleep(wait)


def chunk_for_rate(rate: float | None, batch: int) -> int:
    """Send batches of at most about a tenth of a second of the cap, so a low cap
    paces messages evenly instead of in large bursts separated by long pauses."""
    if rate is None:
        return batch
    return max(1, min(batch, int(rate / 10)))
