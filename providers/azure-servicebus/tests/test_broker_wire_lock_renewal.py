"""Many lock renewals at once on one AMQP session, as AutoLockRenewer does (issue 12).

The SDK numbers transfers on a session without a lock, so concurrent renewals can reuse a
delivery-id; the broker must accept that as the service does (see ``_delivery_ids``).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.servicebus import AutoLockRenewer, ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio import AutoLockRenewer as AsyncAutoLockRenewer
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

COUNT = 60
# Long enough that AutoLockRenewer (it wakes every 0.5 s) keeps up on a busy 2-core machine.
LOCK_SECONDS = 6.0
HOLD_SECONDS = 2 * LOCK_SECONDS + 2  # each lock outlives its first expiry twice over


def _fill(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(COUNT)])


def _receive(receiver: Any) -> list[Any]:
    got: list[Any] = []
    while len(got) < COUNT:
        batch = receiver.receive_messages(max_message_count=COUNT - len(got), max_wait_time=5)
        assert batch, f"only {len(got)} of {COUNT} messages arrived"
        got.extend(batch)
    return got


async def _receive_async(receiver: Any) -> list[Any]:
    got: list[Any] = []
    while len(got) < COUNT:
        batch = await receiver.receive_messages(max_message_count=COUNT - len(got), max_wait_time=5)
        assert batch, f"only {len(got)} of {COUNT} messages arrived"
        got.extend(batch)
    return got


def test_auto_lock_renewer_keeps_many_messages_past_their_lock(
    broker: ServiceBusBroker, client: ServiceBusClient, make_queue: Any
) -> None:
    queue = make_queue(lock_duration=LOCK_SECONDS)
    _fill(client, queue)
    failures: list[Exception | None] = []
    with client.get_queue_receiver(queue) as receiver:
        messages = _receive(receiver)
        first_expiry = [m.locked_until_utc for m in messages]
        with AutoLockRenewer(
            max_lock_renewal_duration=60, on_lock_renew_failure=lambda _m, e: failures.append(e)
        ) as renewer:
            for message in messages:
                renewer.register(receiver, message)
            time.sleep(HOLD_SECONDS)
            last_expiry = [m.locked_until_utc for m in messages]
            for message in messages:
                receiver.complete_message(message)
        assert failures == []
        assert all(last > first for last, first in zip(last_expiry, first_expiry, strict=True))
        assert receiver.receive_messages(max_wait_time=1) == []
    assert broker.message_counts(queue)["total"] == 0


def test_async_auto_lock_renewer_keeps_many_messages_past_their_lock(
    broker: ServiceBusBroker, client: ServiceBusClient, make_queue: Any
) -> None:
    queue = make_queue(lock_duration=LOCK_SECONDS)
    _fill(client, queue)

    async def run() -> list[Exception | None]:
        failures: list[Exception | None] = []

        async def on_failure(_renewable: Any, error: Exception | None) -> None:
            failures.append(error)

        async with AsyncServiceBusClient.from_connection_string(broker.connection_string) as aclient:
            async with aclient.get_queue_receiver(queue) as receiver:
                messages = await _receive_async(receiver)
                renewer = AsyncAutoLockRenewer(max_lock_renewal_duration=60, on_lock_renew_failure=on_failure)
                for message in messages:
                    renewer.register(receiver, message)
                await asyncio.sleep(HOLD_SECONDS)
                for message in messages:
                    await receiver.complete_message(message)
                await renewer.close()
                assert await receiver.receive_messages(max_wait_time=1) == []
        return failures

    assert asyncio.run(run()) == []
    assert broker.message_counts(queue)["total"] == 0


def test_renew_message_lock_from_many_threads(
    broker: ServiceBusBroker, client: ServiceBusClient, make_queue: Any
) -> None:
    queue = make_queue(lock_duration=30.0)
    _fill(client, queue)
    with client.get_queue_receiver(queue) as receiver:
        messages = _receive(receiver)
        before = [m.locked_until_utc for m in messages]
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _round in range(3):
                renewed = list(pool.map(receiver.renew_message_lock, messages))
        assert all(new > old for new, old in zip(renewed, before, strict=True))
        for message in messages:
            receiver.complete_message(message)
    assert broker.message_counts(queue)["total"] == 0


def test_renew_message_lock_with_asyncio_gather(
    broker: ServiceBusBroker, client: ServiceBusClient, make_queue: Any
) -> None:
    queue = make_queue(lock_duration=30.0)
    _fill(client, queue)

    async def run() -> None:
        async with AsyncServiceBusClient.from_connection_string(broker.connection_string) as aclient:
            async with aclient.get_queue_receiver(queue) as receiver:
                messages = await _receive_async(receiver)
                before = [m.locked_until_utc for m in messages]
                for _round in range(3):
                    renewed = await asyncio.gather(*(receiver.renew_message_lock(m) for m in messages))
                assert all(new > old for new, old in zip(renewed, before, strict=True))
                await asyncio.gather(*(receiver.complete_message(m) for m in messages))

    asyncio.run(run())
    assert broker.message_counts(queue)["total"] == 0

