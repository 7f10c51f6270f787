"""The asyncio API: the same engine as the blocking API, driven by coroutines.

::

    async with cloudqueue.aio.open_producer("memory://orders") as producer:
        await producer.send(b"payload")

    async with cloudqueue.aio.open_consumer("memory://orders") as consumer:
        async for message in consumer:
            await message.ack()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from ._engine.effects import AsyncRunner
from ._engine.retry import RetryPolicy
from ._message import Message
from ._options import ConsumerOptions, ProducerOptions
from ._received import AsyncReceivedMessage
from ._sdk import SdkObjects
from ._settlement import Settlement
from ._shell import ITERATION_WAIT, ConsumerShell, ProducerShell, raise_failures
from .codecs import Codec
from .errors import Closed, QueueError
from .offload import Offload
from .ops._inspect import dead_letters, peek, stats
from .ops._redrive import redrive

if TYPE_CHECKING:
    from ._url import Url
    from .driver import Delivery, SubscriptionDriver, TopicDriver
    from .offload._consuming import PayloadResolver

__all__ = [
    "AsyncConsumer",
    "AsyncProducer",
    "dead_letters",
    "open_consumer",
    "open_producer",
    "peek",
    "redrive",
    "stats",
]

log = logging.getLogger("cloudqueue")


class AsyncProducer(ProducerShell):
    """Sends messages to one destination from asyncio tasks; concurrent sends share requests."""

    def __init__(self, url: Url, driver: TopicDriver, options: ProducerOptions) -> None:
        super().__init__(url, driver, options)
        self._runner = AsyncRunner(driver)

    async def send(
        self,
        body: bytes | str | Message | object,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Send one message; return its id once the provider has accepted it.

        ``body`` may be a value (a pydantic model, msgspec Struct, dataclass, dict/list...):
        it is encoded by the producer's ``codec=``, or the codec its type chooses, which
        adds the ``content-type`` attribute (see :mod:`cloudqueue.codecs`)."""
        message = self.message_for(body, attributes, ordering_key, deduplication_id, delay)
        return (await self.send_batch((message,)))[0]

    async def send_batch(self, messages: Iterable[Message]) -> list[str]:
        """Send messages in as few requests as the limits allow (see ``Producer.send_batch``)."""
        core = self._core
        batch, sizes = core.validate(messages)
        if not sizes:
            return []
        return raise_failures(await self._runner.run(core.send(batch, sizes)))

    async def aclose(self) -> None:
        """Wait for sends under way, then release the driver. Idempotent."""
        if await self._runner.run(self._core.drain()):
            await self._driver.aclose()

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncConsumer(ConsumerShell):
    """Receives from one queue or subscription in asyncio tasks."""

    def __init__(
        self,
        url: Url,
        driver: SubscriptionDriver,
        options: ConsumerOptions,
        resolver: PayloadResolver | None = None,
    ) -> None:
        super().__init__(url, driver, options, resolver)
        self._runner = AsyncRunner(driver)
        self._worker: asyncio.Task[None] | None = None

    def _ensure_worker(self) -> None:
        # Started on first use: the consumer may be built outside a running loop.
        if self._worker is None and not self._core.closing:
            self._core.worker_running = True
            self._worker = asyncio.get_running_loop().create_task(
                self._runner.run(self._core.maintain()), name=f"cloudqueue consumer {self.url}"
            )

    async def receive(self, max_messages: int = 10, wait: float = 5.0) -> list[AsyncReceivedMessage]:
        """Up to ``max_messages`` messages; waits up to ``wait`` seconds for the first."""
        deliveries = await self.receive_deliveries(max_messages, wait)
        codec = self.codec
        return [AsyncReceivedMessage(delivery, self, codec) for delivery in deliveries]

    async def receive_deliveries(self, max_messages: int, wait: float) -> list[Delivery]:
        """:meth:`receive` without the message objects: the seam the worker runtime
        uses, as it wraps each delivery in a message of its own (building one here
        as well, only to unwrap it, was a measurable share of a worker's cost)."""
        self._ensure_worker()
        deliveries = await self._runner.run(self._core.receive(max_messages, wait))
        if self._payloads is not None:
            await self._payloads.aresolve(deliveries)
        return deliveries

    async def __aiter__(self) -> AsyncIterator[AsyncReceivedMessage]:
        """Stream messages until the consumer is closed."""
        while True:
            try:
                batch = await self.receive(1, ITERATION_WAIT)
            except Closed:
                return
            except QueueError as error:
                if not error.retryable:
                    raise
                log.warning("receiving from %s failed, trying again: %s", self.url, error)
                continue
            for message in batch:
                yield message

    def settle(self, delivery: Delivery, kind: Settlement, argument: float | str | None) -> None:
        """Carry out one settlement: the seam received messages and the worker
        runtime use. Applications call the message's own methods instead."""
        if self._core.settle(delivery, kind, argument):
            self._runner.wake()

    async def aclose(self) -> None:
        """Stop pulling, give back prefetched messages, flush settlements, release the driver."""
        if self._core.closed:
            return
        await self._runner.run(self._core.close())
        if self._worker is not None:
            await self._worker
        if not self._driver_closed:
            self._driver_closed = True
            await self._driver.aclose()

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def open_producer(
    url: str,
    *,
    retry: RetryPolicy | None = None,
    max_concurrent_batches: int = 8,
    offload: Offload | None = None,
    sdk: SdkObjects | None = None,
    codec: Codec | None = None,
) -> AsyncProducer:
    """An :class:`AsyncProducer` for ``url`` (options as :func:`cloudqueue.open_producer`).

    Payload stores block: with ``offload``, uploads run in worker threads. ``codec``: as
    for :func:`cloudqueue.open_producer`."""
    return AsyncProducer.open(url, retry, max_concurrent_batches, offload, sdk, codec)


def open_consumer(
    url: str,
    *,
    max_in_flight: int = 1000,
    settle_delay: float = 0.05,
    max_lease_extension: float = 1800.0,
    retry: RetryPolicy | None = None,
    offload: Offload | None = None,
    sdk: SdkObjects | None = None,
    codec: Codec | None = None,
) -> AsyncConsumer:
    """An :class:`AsyncConsumer` for ``url`` (options as :func:`cloudqueue.open_consumer`).

    Payload stores block: with ``offload``, downloads and deletes run in worker threads."""
    return AsyncConsumer.open(
        url, max_in_flight, settle_delay, max_lease_extension, retry, offload, sdk, codec
    )
