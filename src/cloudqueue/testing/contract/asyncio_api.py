"""The asyncio API against the same provider (cases 1, 8, 21 through asyncio)."""

from __future__ import annotations

import asyncio
import time

import pytest

import cloudqueue

from ._base import SuiteBase
from ._harness import Destination, Harness

__all__ = ["AsyncAPI"]


class AsyncAPI(SuiteBase):
    def test_async_round_trip_and_iteration(self, dest: Destination) -> None:
        async def main() -> list[bytes]:
            async with cloudqueue.aio.open_producer(dest.producer_url) as producer:
                await asyncio.gather(*(producer.send(f"{i}") for i in range(20)))
            got: list[bytes] = []
            async with cloudqueue.aio.open_consumer(dest.consumer_url) as consumer:
                async with asyncio.timeout(60):
                    async for message in consumer:
                        got.append(message.body)
                        await message.ack()
                        if len(got) == 20:
                            break
            return got

        got = asyncio.run(main())
        assert sorted(got, key=int) == [str(i).encode() for i in range(20)]

    def test_async_nack_redelivers(self, dest: Destination, harness: Harness) -> None:
        async def main() -> tuple[str, str, int | None]:
            async with cloudqueue.aio.open_producer(dest.producer_url) as producer:
                await producer.send(b"retry me")
            async with cloudqueue.aio.open_consumer(dest.consumer_url) as consumer:
                first = (await _receive_one(consumer, 30))
                await first.nack()
                second = await _receive_one(consumer, 30)
                await second.ack()
                return first.id, second.id, second.delivery_attempt

        first_id, second_id, attempt = asyncio.run(main())
        assert first_id == second_id
        if harness.supports_delivery_attempt:
            assert attempt == 2

    def test_cancelling_a_waiting_receive_returns_promptly(self, dest: Destination) -> None:
        async def main() -> float:
            async with cloudqueue.aio.open_consumer(dest.consumer_url) as consumer:
                task = asyncio.create_task(consumer.receive(max_messages=1, wait=15))
                await asyncio.sleep(0.3)
                started = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return time.monotonic() - started

        assert asyncio.run(main()) < 5.0

    def test_async_send_batch_validates_before_sending(self, dest: Destination) -> None:
        async def main() -> None:
            async with cloudqueue.aio.open_producer(dest.producer_url) as producer:
                with pytest.raises(cloudqueue.InvalidArgument):
                    await producer.send_batch(
                        [cloudqueue.Message(b"ok"), cloudqueue.Message(b"x", attributes={"": "y"})]
                    )
            async with cloudqueue.aio.open_consumer(dest.consumer_url) as consumer:
                assert await consumer.receive(max_messages=1, wait=1.0) == []

        asyncio.run(main())


async def _receive_one(
    consumer: cloudqueue.AsyncConsumer, timeout: float
) -> cloudqueue.AsyncReceivedMessage:
    async with asyncio.timeout(timeout):
        while True:
            batch = await consumer.receive(max_messages=1, wait=1.0)
            if batch:
                return batch[0]
