"""The depth history behind the charts: a background task reads every destination's stats
every ``interval`` seconds and keeps the last ``history`` seconds of them in memory."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass

from ._destinations import Destination
from ._stats import Reading, read_all

__all__ = ["Sample", "Sampler"]


@dataclass(frozen=True, slots=True)
class Sample:
    #: Wall-clock time (epoch seconds) the stats were read.
    t: float
    available: int | None
    in_flight: int | None
    dead_letters: int | None


class Sampler:
    def __init__(self, destinations: list[Destination], interval: float, history: float) -> None:
        self.destinations = destinations
        self.interval = interval
        self.history = history
        self._samples: dict[int, collections.deque[Sample]] = {
            destination.index: collections.deque() for destination in destinations
        }
        self._task: asyncio.Task[None] | None = None

    def samples(self, index: int) -> list[Sample]:
        return list(self._samples[index])

    def record(self, readings: list[Reading], now: float) -> None:
        for reading in readings:
            samples = self._samples[reading.destination.index]
            if reading.stats is not None:  # a failed read leaves a gap, not a zero
                stats = reading.stats
                samples.append(Sample(now, stats.available, stats.in_flight, stats.dead_letters))
            while samples and samples[0].t < now - self.history:
                samples.popleft()

    async def sample_once(self) -> None:
        self.record(await read_all(self.destinations), time.time())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cloudqueue-ui-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.sample_once()
            await asyncio.sleep(self.interval)
