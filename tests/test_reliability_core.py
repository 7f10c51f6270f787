"""Reliability of the in-process providers: bounded bookkeeping under long leases,
and close() waking receives that wait in other threads or tasks (issue 11)."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

import cloudqueue


def _round_trips(url: str, batches: int) -> None:
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        for _ in range(batches):
            producer.send_batch([cloudqueue.Message(b"x" * 100) for _ in range(100)])
            received = 0
            while received < 100:
                batch = consumer.receive(max_messages=100, wait=1.0)
                for message in batch:
                    message.ack()
                received += len(batch)


def test_acked_messages_leave_no_bookkeeping_behind_under_a_long_lease() -> None:
    url = f"memory://long-lease-{time.monotonic_ns()}"
    cloudqueue.declare(url, lease=600.0)
    _round_trips(url, 50)  # warm up: imports, caches
    tracemalloc.start()
    try:
        _round_trips(url, 100)
        after_10k, _ = tracemalloc.get_traced_memory()
        _round_trips(url, 400)
        after_50k, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 40,000 more messages acked: before the fix every one left ~100 bytes of
    # lease bookkeeping behind for 600 s (4 MB here, hundreds of MB under load).
    assert after_50k - after_10k < 1_000_000


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://wake-{time.monotonic_ns()}"
    return f"sqlite:///{tmp_path / 'wake.db'}?queue=q"


def test_close_wakes_a_receive_waiting_in_another_thread(url: str) -> None:
    consumer = cloudqueue.open_consumer(url)
    returned: list[list[cloudqueue.ReceivedMessage]] = []
    waiter = threading.Thread(target=lambda: returned.append(consumer.receive(max_messages=1, wait=15.0)))
    waiter.start()
    time.sleep(0.3)  # the receive is waiting
    started = time.monotonic()
    consumer.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert returned == [[]]
    assert time.monotonic() - started < 2.0  # was the rest of the 15 s wait


def test_aclose_wakes_a_pending_receive(url: str) -> None:
    async def run() -> float:
        consumer = cloudqueue.aio.open_consumer(url)
        pending = asyncio.ensure_future(consumer.receive(max_messages=1, wait=15.0))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await consumer.aclose()
        assert await asyncio.wait_for(pending, 5) == []
        return time.monotonic() - started

    assert asyncio.run(run()) < 2.0
