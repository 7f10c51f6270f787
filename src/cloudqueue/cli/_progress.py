"""A small progress bar for stderr (no dependency)."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``[#########.........]  450/1000  45%  1234 msg/s``.

    On a terminal it redraws in place at most every ``interval`` seconds; in a
    file or pipe it writes only the final line, so logs stay readable.
    """

    def __init__(self, total: int, stream: TextIO, *, width: int = 30, interval: float = 0.1) -> None:
        self.total = total
        self.done = 0
        self._stream = stream
        self._width = width
        self._interval = interval
        self._live = stream.isatty()
        self._started = time.monotonic()
        self._drawn_at = 0.0

    def advance(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        now = time.monotonic()
        if self._live and now - self._drawn_at >= self._interval:
            self._drawn_at = now
            self._stream.write("\r" + self.render())
            self._stream.flush()

    def finish(self) -> None:
        self._stream.write(("\r" if self._live else "") + self.render() + "\n")
        self._stream.flush()

    def render(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self._width)
        elapsed = max(time.monotonic() - self._started, 1e-9)
        digits = len(str(self.total))
        return (
            f"[{'#' * filled}{'.' * (self._width - filled)}] "
            f"{self.done:>{digits}}/{self.total} {fraction:4.0%} {self.done / elapsed:8.0f} msg/s"
        )
