"""A heap of deadlines: lock expiry, scheduled messages, TTL and session locks.

Entries are never removed when they become moot (a lock renewed, a message
completed); each callback checks whether it still applies when it fires. That
keeps every operation O(log n) instead of scanning entities.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


def now_ms() -> int:
    return int(time.time() * 1000)


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._counter = itertools.count()

    def at(self, deadline_ms: int, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (deadline_ms, next(self._counter), callback))

    def next_deadline(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self) -> None:
        current = now_ms()
        while self._heap and self._heap[0][0] <= current:
            _, _, callback = heapq.heappop(self._heap)
            callback()
