"""What the console's buttons do: redrive, purge and send, with their form input checked.

Bad input raises :class:`ActionError` naming the problem (and the limit), shown on the
page with status 400; nothing has been changed when it is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from .. import aio
from .._api import dead_letter_url, purge
from ..ops import PeekedMessage, RedriveReport
from ._destinations import Destination

__all__ = ["ActionError", "RedriveSelection", "attribute_lines", "purge_confirmed", "redrive", "send"]

#: Longest test message body the send form accepts, in bytes (every provider takes it).
MAX_SEND_BYTES = 64 * 1024
#: Most ids one redrive may select by checkbox (a page shows at most 100 dead letters).
MAX_SELECTED = 1000


class ActionError(Exception):
    """Form input the console refuses, with a message for the page."""


def attribute_lines(text: str, field: str) -> dict[str, str]:
    """``NAME=VALUE`` lines (blank lines skipped) as a dict."""
    attributes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ActionError(f"{field}: line {number} is not NAME=VALUE")
        attributes[name.strip()] = value.strip()
    return attributes


@dataclass(frozen=True, slots=True)
class RedriveSelection:
    """Which dead letters move: all of them when every part is empty."""

    ids: frozenset[str]
    attributes: dict[str, str]
    reason: str
    limit: int | None

    @classmethod
    def parse(cls, ids: list[str], where: str, reason: str, limit: str) -> RedriveSelection:
        if len(ids) > MAX_SELECTED:
            raise ActionError(f"{len(ids)} dead letters selected; select at most {MAX_SELECTED}")
        count: int | None = None
        if limit.strip():
            try:
                count = int(limit)
            except ValueError:
                raise ActionError(f"limit must be a whole number, not {limit[:40]!r}") from None
            if count < 1:
                raise ActionError(f"limit must be at least 1, not {count}")
        return cls(frozenset(ids), attribute_lines(where, "where"), reason.strip(), count)

    def matcher(self) -> Callable[[PeekedMessage], bool] | None:
        if not (self.ids or self.attributes or self.reason):
            return None

        def matches(message: PeekedMessage) -> bool:
            if self.ids and message.id not in self.ids:
                return False
            if any(message.attributes.get(k) != v for k, v in self.attributes.items()):
                return False
            reason = message.dead_letter.reason if message.dead_letter else None
            return not self.reason or reason == self.reason

        return matches


async def redrive(destination: Destination, selection: RedriveSelection, *, dry_run: bool) -> RedriveReport:
    source = await asyncio.to_thread(dead_letter_url, destination.url)
    return await aio.redrive(source, where=selection.matcher(), limit=selection.limit, dry_run=dry_run)


async def purge_confirmed(destination: Destination, typed: str) -> None:
    if typed.strip() != destination.name:
        raise ActionError(f"type the queue's name, {destination.name}, to confirm the purge")
    await asyncio.to_thread(purge, destination.url)


async def send(destination: Destination, body: str, attributes: str) -> str:
    data = body.encode()
    if not data:
        raise ActionError("the message body is empty: type something to send")
    if len(data) > MAX_SEND_BYTES:
        raise ActionError(
            f"the message body is {len(data)} bytes; the console sends at most {MAX_SEND_BYTES}"
        )
    parsed = attribute_lines(attributes, "attributes")
    async with aio.open_producer(destination.url) as producer:
        return await producer.send(data, attributes=parsed or None)
