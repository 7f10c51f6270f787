"""Reading a queue without settling anything: statistics, peek, dead letters."""

from __future__ import annotations

import asyncio

from .. import aio
from .._options import ConsumerOptions
from .._received import AsyncReceivedMessage
from .._registry import resolve
from .._sdk import SdkObjects
from .._url import Url
from ..driver import Delivery, Provider
from ..errors import Unsupported
from ._checks import check_max_messages
from ._redrive import give_back
from ._types import PeekedMessage, QueueStats

__all__ = ["dead_letters", "peek", "peek_deliveries", "stats"]

#: Receive-and-release peeks stop after a receive this long that brings nothing.
_QUIET = 1.0


async def stats(url: str, *, sdk: SdkObjects | None = None) -> QueueStats:
    """The counts of the queue or subscription named by ``url`` (see :class:`QueueStats`)."""
    provider, parsed = resolve(url, sdk)
    return await asyncio.to_thread(provider.stats, parsed)


async def peek(
    url: str, max_messages: int = 10, *, sdk: SdkObjects | None = None
) -> list[PeekedMessage]:
    """Up to ``max_messages`` (1 to 1000) messages of the queue or subscription named by
    ``url``, oldest first where the provider can tell, without settling them.

    Native where the provider can peek. Elsewhere the messages are received, held
    together and given back: each one's delivery count rises by one (which counts
    towards ``dead_letter_after``), and ordered destinations are refused with
    Unsupported, since holding a message would block its ordering key.
    """
    max_messages = check_max_messages(max_messages)
    provider, parsed = resolve(url, sdk)
    deliveries = await peek_deliveries(provider, parsed, max_messages)
    return [PeekedMessage.of(delivery) for delivery in deliveries]


async def dead_letters(
    url: str, max_messages: int = 10, *, sdk: SdkObjects | None = None
) -> list[PeekedMessage]:
    """Up to ``max_messages`` dead letters of the queue or subscription ``url`` (the
    source, not its dead-letter queue), each with its :attr:`PeekedMessage.dead_letter`
    facts; peeked as :func:`peek` does, except that an ordered dead-letter destination
    (SQS FIFO) is read by receiving and giving back too: nothing processes dead letters
    in key order, so holding them for the length of the peek holds nobody up."""
    max_messages = check_max_messages(max_messages)
    provider, parsed = resolve(url, sdk)
    # The dead letters may live with another provider (an SNS subscription's are an
    # sqs:// queue): read them through the one their URL names.
    dead_provider, dead_url = resolve(await asyncio.to_thread(provider.dead_letter_url, parsed))
    deliveries = await peek_deliveries(dead_provider, dead_url, max_messages, dead_letters=True)
    return [
        PeekedMessage.of(delivery, dead_provider.dead_letter_facts(dead_url, delivery))
        for delivery in deliveries
    ]


async def peek_deliveries(
    provider: Provider, url: Url, max_messages: int, *, dead_letters: bool = False
) -> list[Delivery]:
    if provider.supports_peek:
        deliveries = await asyncio.to_thread(provider.peek, url, max_messages)
        carrier = (await asyncio.to_thread(provider.capabilities, url)).limits.trace_carrier
        return [_without_carrier(delivery, carrier.attribute_names) for delivery in deliveries]
    return await _receive_and_release(provider, url, max_messages, dead_letters)


def _without_carrier(delivery: Delivery, names: frozenset[str]) -> Delivery:
    """Trace context attributes are never shown as user attributes (as on receive)."""
    if not names.isdisjoint(delivery.attributes):
        delivery.attributes = {n: v for n, v in delivery.attributes.items() if n not in names}
    return delivery


async def _receive_and_release(
    provider: Provider, url: Url, max_messages: int, dead_letters: bool
) -> list[Delivery]:
    capabilities = await asyncio.to_thread(provider.capabilities, url)
    if capabilities.ordering and not dead_letters:
        raise Unsupported(
            f"cannot peek {url}: the {url.scheme}:// provider has no native peek, and "
            "receiving messages of an ordered destination to give them back would hold up "
            "their ordering keys for other consumers"
        )
    driver = await asyncio.to_thread(provider.open_subscription, url)
    options = ConsumerOptions(max_in_flight=max_messages)
    consumer = aio.AsyncConsumer(url, driver, options)
    held: list[AsyncReceivedMessage] = []
    try:
        while len(held) < max_messages:
            batch = await consumer.receive(max_messages - len(held), wait=_QUIET)
            if not batch:
                break
            held.extend(batch)
    finally:
        # Given back together, only once all are held: a message given back early
        # could be received again and counted twice.
        await give_back(held)
        await consumer.aclose()
    return [message.delivery for message in held]

