"""Accepting the next available session, as the ``session_pool_receive`` samples do (issue 12).

When no session turns up within ``max_wait_time`` the broker refuses the attach the way the
service does (null source, then a detach with ``com.microsoft:timeout``): the SDK must raise
``OperationTimeoutError`` from opening the receiver, sync and async, and stay usable.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    SessionCannotBeLockedError,
)

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

SESSIONS = ["s-a", "s-b", "s-c", "s-d"]
PER_SESSION = 3
WORKERS = 3
_ids = itertools.count()


@pytest.fixture
def fast_client(broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    # No retries: each timeout is one max_wait_time, not four plus back-off.
    with ServiceBusClient.from_connection_string(broker.connection_string, retry_total=0) as sb:
        yield sb


@pytest.fixture
def session_queue(broker: ServiceBusBroker) -> str:
    name = f"wire-sessions-{next(_ids)}"
    broker.create_queue(name, requires_session=True, lock_duration=30.0)
    return name


def _send_sessions(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        for sid in SESSIONS:
            bodies = [f"{sid}/{i}" for i in range(PER_SESSION)]
            sender.send_messages([ServiceBusMessage(body, session_id=sid) for body in bodies])


def test_next_available_session_times_out_on_open(fast_client: ServiceBusClient, session_queue: str) -> None:
    entered = False
    with pytest.raises(OperationTimeoutError, match=r"com\.microsoft:timeout"):
        with fast_client.get_queue_receiver(
            session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
        ):
            entered = True
    assert not entered
    # The refused link left nothing behind: a session that appears now is offered.
    with fast_client.get_queue_sender(session_queue) as sender:
        sender.send_messages(ServiceBusMessage("late", session_id="late"))
    with fast_client.get_queue_receiver(
        session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
    ) as receiver:
        assert receiver.session.session_id == "late"
        [message] = receiver.receive_messages(max_wait_time=5)
        receiver.complete_message(message)


def test_async_next_available_session_times_out_on_open(
    broker: ServiceBusBroker, session_queue: str
) -> None:
    async def run() -> tuple[bool, str]:
        entered = False
        async with AsyncServiceBusClient.from_connection_string(
            broker.connection_string, retry_total=0
        ) as client:
            with pytest.raises(OperationTimeoutError, match=r"com\.microsoft:timeout"):
                async with client.get_queue_receiver(
                    session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
                ):
                    entered = True
            async with client.get_queue_sender(session_queue) as sender:
                await sender.send_messages(ServiceBusMessage("late", session_id="late"))
            async with client.get_queue_receiver(
                session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
            ) as receiver:
                [message] = await receiver.receive_messages(max_wait_time=5)
                await receiver.complete_message(message)
                return entered, str(receiver.session.session_id)

    assert asyncio.run(run()) == (False, "late")


def test_locked_session_is_refused_on_open(fast_client: ServiceBusClient, session_queue: str) -> None:
    with fast_client.get_queue_sender(session_queue) as sender:
        sender.send_messages(ServiceBusMessage("x", session_id="S"))
    with fast_client.get_queue_receiver(session_queue, session_id="S") as owner:
        entered = False
        with pytest.raises(SessionCannotBeLockedError):
            with fast_client.get_queue_receiver(session_queue, session_id="S"):
                entered = True
        assert not entered
        [message] = owner.receive_messages(max_wait_time=5)
        owner.complete_message(message)


def test_missing_entity_is_refused_on_open(fast_client: ServiceBusClient) -> None:
    # A refused receiver gets a null source back, a refused sender a null target.
    with pytest.raises(MessagingEntityNotFoundError):
        with fast_client.get_queue_receiver("no-such-queue"):
            pass
    with pytest.raises(MessagingEntityNotFoundError):
        with fast_client.get_queue_sender("no-such-queue") as sender:
            sender.send_messages(ServiceBusMessage("x"))


def _pool_worker(client: ServiceBusClient, queue: str) -> tuple[dict[str, list[str]], bool]:
    """One worker of the sample: take sessions until none is left, drain each one."""
    drained: dict[str, list[str]] = {}
    while True:
        try:
            with client.get_queue_receiver(
                queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
            ) as receiver:
                sid = str(receiver.session.session_id)
                for message in receiver:  # ends after max_wait_time without a message
                    drained.setdefault(sid, []).append(str(message))
                    receiver.complete_message(message)
                receiver.session.set_state(b"done")
        except OperationTimeoutError:
            return drained, True


def test_session_pool_receive(
    fast_client: ServiceBusClient, broker: ServiceBusBroker, session_queue: str
) -> None:
    _send_sessions(fast_client, session_queue)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(lambda _i: _pool_worker(fast_client, session_queue), range(WORKERS)))
    _assert_each_session_drained_once(results)
    assert broker.message_counts(session_queue)["total"] == 0


async def _pool_worker_async(client: Any, queue: str) -> tuple[dict[str, list[str]], bool]:
    drained: dict[str, list[str]] = {}
    while True:
        try:
            async with client.get_queue_receiver(
                queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
            ) as receiver:
                sid = str(receiver.session.session_id)
                async for message in receiver:
                    drained.setdefault(sid, []).append(str(message))
                    await receiver.complete_message(message)
                await receiver.session.set_state(b"done")
        except OperationTimeoutError:
            return drained, True


def test_async_session_pool_receive(
    fast_client: ServiceBusClient, broker: ServiceBusBroker, session_queue: str
) -> None:
    _send_sessions(fast_client, session_queue)

    async def run() -> list[tuple[dict[str, list[str]], bool]]:
        async with AsyncServiceBusClient.from_connection_string(
            broker.connection_string, retry_total=0
        ) as client:
            workers = (_pool_worker_async(client, session_queue) for _ in range(WORKERS))
            return list(await asyncio.gather(*workers))

    _assert_each_session_drained_once(asyncio.run(run()))
    assert broker.message_counts(session_queue)["total"] == 0


def _assert_each_session_drained_once(results: list[tuple[dict[str, list[str]], bool]]) -> None:
    assert all(timed_out for _drained, timed_out in results)
    merged: dict[str, list[str]] = {}
    for drained, _timed_out in results:
        for sid, bodies in drained.items():
            assert sid not in merged, f"session {sid} was handed to two workers"
            merged[sid] = bodies
    assert merged == {sid: [f"{sid}/{i}" for i in range(PER_SESSION)] for sid in SESSIONS}
