"""Reading every destination's stats at once, one failure never hiding the others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .. import aio
from ..driver import QueueStats
from ..errors import QueueError
from ._destinations import Destination

__all__ = ["Reading", "read_all", "read_one"]


@dataclass(frozen=True, slots=True)
class Reading:
    destination: Destination
    stats: QueueStats | None
    #: One line saying why the stats could not be read (QueueError messages are
    #: scrubbed of secrets when made).
    error: str | None = None


async def read_one(destination: Destination) -> Reading:
    try:
        return Reading(destination, await aio.stats(destination.url))
    except QueueError as error:
        return Reading(destination, None, " ".join(f"{error.code.value}: {error}".split()))


async def read_all(destinations: list[Destination]) -> list[Reading]:
    return list(await asyncio.gather(*(read_one(destination) for destination in destinations)))
