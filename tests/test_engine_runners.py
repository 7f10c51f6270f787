"""The runners' two kinds of waiting: a ``Wait`` (a receiver or sender waiting on
others) looks again whenever any step ends; an ``Idle`` (the consumer's background
worker) only when something yields ``WAKE`` or calls ``wake()``. Waking the worker
at the end of every receive cost a thread wake-up per receive."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Sequence
from typing import Any

import pytest

import cloudqueue
import cloudqueue.aio
from cloudqueue import _registry
from cloudqueue._engine.effects import WAKE, AsyncRunner, Idle, Step, SyncRunner, Wait
from cloudqueue._options import ConsumerOptions
from cloudqueue.driver import BatchErrors, Capabilities, Delivery, SubscriptionDriver
from cloudqueue.errors import InvalidArgument, Unavailable, Unknown

#: How long the sync tests give a wrongly woken waiter to show it was woken. A
#: waiter that is not woken stays put however long we look, so a slow machine can
#: only make these tests pass when they should fail, never the other way round.
LOOK = 0.3


def _driver() -> Any:
    return cloudqueue.open_producer("memory://engine-runners")._driver


def _waits(effect: Any, seen: list[str]) -> Step[None]:
    seen.append("waiting")
    yield effect
    seen.append("woken")


def _ends() -> Step[None]:
    return
    yield  # a generator that ends at once


def _wakes() -> Generator[Any, Any, None]:
    yield WAKE


def _in_thread(runner: SyncRunner, step: Step[None]) -> threading.Thread:
    thread = threading.Thread(target=runner.run, args=(step,), daemon=True)
    thread.start()
    return thread


def _until(condition: Any) -> None:
    event = threading.Event()
    while not condition():
        event.wait(0.001)


def test_sync_wait_looks_again_when_any_step_ends() -> None:
    runner = SyncRunner(_driver())
    seen: list[str] = []
    thread = _in_thread(runner, _waits(Wait(None), seen))
    _until(lambda: runner.waiting == 1)
    runner.run(_ends())
    thread.join()
    assert seen == ["waiting", "woken"]


def test_sync_idle_sleeps_through_other_steps_until_woken() -> None:
    runner = SyncRunner(_driver())
    seen: list[str] = []
    thread = _in_thread(runner, _waits(Idle(None), seen))
    _until(lambda: runner.idling == 1)
    for _ in range(3):
        runner.run(_ends())
    thread.join(LOOK)
    assert thread.is_alive() and seen == ["waiting"]
    runner.run(_wakes())
    thread.join()
    assert seen == ["waiting", "woken"]


def test_sync_wake_from_outside_a_step_ends_an_idle() -> None:
    runner = SyncRunner(_driver())
    seen: list[str] = []
    thread = _in_thread(runner, _waits(Idle(None), seen))
    _until(lambda: runner.idling == 1)
    with runner.lock:
        runner.wake()  # what the consumer does when a settlement needs the worker
    thread.join()
    assert seen == ["waiting", "woken"]


def test_async_idle_sleeps_through_other_steps_until_woken() -> None:
    async def main() -> None:
        runner = AsyncRunner(_driver())
        waited: list[str] = []
        idled: list[str] = []
        waiter = asyncio.create_task(runner.run(_waits(Wait(None), waited)))
        idler = asyncio.create_task(runner.run(_waits(Idle(None), idled)))
        for _ in range(3):
            await asyncio.sleep(0)
        await runner.run(_ends())
        for _ in range(5):  # plenty of loop turns for a woken task to finish
            await asyncio.sleep(0)
        assert waiter.done() and waited == ["waiting", "woken"]
        assert not idler.done() and idled == ["waiting"]
        runner.wake()
        await asyncio.wait_for(idler, 30)
        assert idled == ["waiting", "woken"]

    asyncio.run(main())


def test_a_consumer_worker_still_flushes_acks_and_closes() -> None:
    # The worker idles now: the acks it must send and the close it must notice
    # still wake it (through settle's wake and close's WAKE).
    url = "memory://engine-runners-acks"
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(b"%d" % i) for i in range(5)])
    with cloudqueue.open_consumer(url, settle_delay=3600.0) as consumer:
        for message in consumer.receive(max_messages=5, wait=5.0):
            message.ack()
    with cloudqueue.open_consumer(url) as consumer:
        assert consumer.receive(max_messages=5, wait=0.2) == []


# -- a receive's retries: the first attempt is written into the receive itself ------


class FailingReceives(SubscriptionDriver):
    """The memory subscription, with its next receives failing as planned."""

    def __init__(self, inner: SubscriptionDriver, failures: list[BaseException]) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def _next(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        self._next()
        return self.inner.receive_batch(max_messages, wait)

    async def areceive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        self._next()
        return self.inner.receive_batch(max_messages, wait)

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        return self.inner.ack(tokens)

    async def aack(self, tokens: Sequence[object]) -> BatchErrors:
        return self.inner.ack(tokens)

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return self.inner.nack(entries)


FAST_RETRY = cloudqueue.RetryPolicy(initial=0.01, maximum=0.02, deadline=30.0)


def _consumer_over(url: str, failures: list[BaseException], asynchronous: bool) -> Any:
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"there")
    provider, parsed = _registry.resolve(url)
    driver = FailingReceives(provider.open_subscription(parsed), failures)
    options = ConsumerOptions(retry=FAST_RETRY)
    kind = cloudqueue.aio.AsyncConsumer if asynchronous else cloudqueue.Consumer
    return kind(parsed, driver, options), driver


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
@pytest.mark.parametrize(
    ("failures", "raised", "calls"),
    [
        ([Unavailable("down"), Unavailable("still down")], None, 3),
        ([InvalidArgument("refused")], InvalidArgument, 1),
        ([KeyError("a driver bug")], Unknown, 1),
        ([Unavailable("down"), KeyError("then a bug")], Unknown, 2),
    ],
    ids=["retryable-twice", "not-retryable", "foreign", "retryable-then-foreign"],
)
def test_a_receive_retries_what_is_retryable_and_raises_the_rest(
    asynchronous: bool, failures: list[BaseException], raised: type[Exception] | None, calls: int
) -> None:
    url = f"memory://engine-runners-retry-{len(failures)}-{raised and raised.__name__}-{asynchronous}"
    consumer, driver = _consumer_over(url, list(failures), asynchronous)

    def check(received: list[Any]) -> None:
        assert [message.body for message in received] == [b"there"]

    if asynchronous:
        async def main() -> None:
            try:
                if raised is None:
                    check(await consumer.receive(max_messages=1, wait=5.0))
                else:
                    with pytest.raises(raised) as info:
                        await consumer.receive(max_messages=1, wait=5.0)
                    if raised is Unknown:
                        assert isinstance(info.value.__cause__, KeyError)
            finally:
                await consumer.aclose()

        asyncio.run(main())
    else:
        try:
            if raised is None:
                check(consumer.receive(max_messages=1, wait=5.0))
            else:
                with pytest.raises(raised) as info:
                    consumer.receive(max_messages=1, wait=5.0)
                if raised is Unknown:
                    assert isinstance(info.value.__cause__, KeyError)
        finally:
            consumer.close()
    assert driver.calls == calls
