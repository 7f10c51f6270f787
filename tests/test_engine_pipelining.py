"""The producer keeps the batches of one large send in flight together (a ``Calls``
effect), sync and asyncio: up to ``max_concurrent_batches``, ordering keys alone,
results in order, retries per batch, and a cancelled send leaves nothing in flight."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator, Sequence

import pytest
from plugin_registration import registered

import cloudqueue
from cloudqueue.driver import (
    Capabilities,
    Declaration,
    Limits,
    Provider,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.errors import QueueError

LIMITS = Limits(
    max_message_bytes=1000, max_send_batch=10, max_send_batch_bytes=100_000, max_receive_batch=10,
    max_settle_batch=10, max_attributes=3, max_attribute_name_bytes=20,
    max_attribute_value_bytes=50, attribute_name_pattern=r"[a-z]+", max_delay=None,
)
CAPABILITIES = Capabilities(limits=LIMITS, ordering=True)
FAST_RETRY = cloudqueue.RetryPolicy(initial=0.01, maximum=0.05, deadline=5.0)
#: Long enough that only a missing overlap breaks the barrier, even on a loaded machine.
BARRIER_TIMEOUT = 30.0


class Wire:
    """What the test driver saw: every request, and how many were under way at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.barrier: threading.Barrier | None = None  # calls wait here for each other
        self.fail_once: set[str] = set()  # bodies answered "throttled" the first time
        self.refuse: set[str] = set()  # bodies answered "invalid" every time
        self.whole_call_failures = 0
        # asyncio only: requests hang until cancelled, and all_hanging is set once
        # hang_when of them are under way.
        self.hang_when: int | None = None
        self.all_hanging: asyncio.Event | None = None
        self.requests: list[list[str]] = []
        self.active = 0
        self.most_active = 0
        self.ids = itertools.count()


class WireTopic(TopicDriver):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def send_batch(self, messages: Sequence[cloudqueue.Message]) -> list[str | QueueError]:
        wire = self.wire
        with wire.lock:
            wire.active += 1
            wire.most_active = max(wire.most_active, wire.active)
        try:
            if wire.barrier is not None:
                wire.barrier.wait(BARRIER_TIMEOUT)  # broken (an error) unless all overlap
            return self._answer(messages)
        finally:
            with wire.lock:
                wire.active -= 1

    async def asend_batch(self, messages: Sequence[cloudqueue.Message]) -> list[str | QueueError]:
        wire = self.wire
        if wire.hang_when is None:
            return await super().asend_batch(messages)
        wire.active += 1  # one event loop: no lock needed
        try:
            if wire.active == wire.hang_when and wire.all_hanging is not None:
                wire.all_hanging.set()
            await asyncio.Event().wait()  # until cancelled
            raise AssertionError("a hanging request was answered")
        finally:
            wire.active -= 1

    def _answer(self, messages: Sequence[cloudqueue.Message]) -> list[str | QueueError]:
        wire = self.wire
        with wire.lock:
            wire.requests.append([m.body.decode() for m in messages])
            if wire.whole_call_failures:
                wire.whole_call_failures -= 1
                raise cloudqueue.Unavailable("connection reset")
            outcomes: list[str | QueueError] = []
            for message in messages:
                body = message.body.decode()
                if body in wire.refuse:
                    outcomes.append(cloudqueue.InvalidArgument(f"{body} refused"))
                elif body in wire.fail_once:
                    wire.fail_once.discard(body)
                    outcomes.append(cloudqueue.ResourceExhausted("throttled"))
                else:
                    outcomes.append(f"{body}@{next(wire.ids)}")
            return outcomes


class WireProvider(Provider):
    schemes = ("wire",)
    distribution = "cloudqueue-tests"
    parameters = frozenset()

    def __init__(self) -> None:
        self.wire = Wire()

    def open_topic(self, url: Url) -> TopicDriver:
        return WireTopic(self.wire)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        raise cloudqueue.Unsupported("the wire test provider only sends")

    def capabilities(self, url: Url) -> Capabilities:
        return CAPABILITIES

    def declare(self, url: Url, declaration: Declaration) -> None:
        pass

    def dead_letter_url(self, url: Url) -> Url:
        return url

    def purge(self, url: Url) -> None:
        pass

    def delete(self, url: Url) -> None:
        pass


@pytest.fixture
def wire() -> Iterator[Wire]:
    provider = WireProvider()
    with registered(provider, "wire-tests"):
        yield provider.wire


def bodies(count: int, key: str | None = None) -> list[cloudqueue.Message]:
    return [cloudqueue.Message(f"m{i}", ordering_key=key) for i in range(count)]


def assert_ids_in_order(ids: Sequence[str | None], count: int) -> None:
    assert [i.split("@")[0] if i else None for i in ids] == [f"m{i}" for i in range(count)]


def test_a_large_send_has_its_batches_in_flight_together(wire: Wire) -> None:
    wire.barrier = threading.Barrier(3)  # passes only when three requests are under way
    with cloudqueue.open_producer("wire://q", max_concurrent_batches=3) as producer:
        ids = producer.send_batch(bodies(30))
    assert_ids_in_order(ids, 30)
    assert sorted(len(request) for request in wire.requests) == [10, 10, 10]
    assert wire.most_active == 3


def test_an_async_large_send_has_its_batches_in_flight_together(wire: Wire) -> None:
    wire.barrier = threading.Barrier(3)

    async def main() -> list[str]:
        async with cloudqueue.aio.open_producer("wire://q", max_concurrent_batches=3) as producer:
            return await producer.send_batch(bodies(30))

    assert_ids_in_order(asyncio.run(main()), 30)
    assert wire.most_active == 3


def test_no_more_requests_in_flight_than_max_concurrent_batches(wire: Wire) -> None:
    # Four batches at two at a time: two rounds, each of which the barrier makes overlap.
    wire.barrier = threading.Barrier(2)
    with cloudqueue.open_producer("wire://q", max_concurrent_batches=2) as producer:
        ids = producer.send_batch(bodies(40))
    assert_ids_in_order(ids, 40)
    assert len(wire.requests) == 4
    assert wire.most_active == 2


def test_batches_with_ordering_keys_go_one_at_a_time_in_order(wire: Wire) -> None:
    with cloudqueue.open_producer("wire://q", max_concurrent_batches=8) as producer:
        ids = producer.send_batch(bodies(35, key="k"))
    assert_ids_in_order(ids, 35)
    assert wire.most_active == 1
    # The key's messages reached the wire in the order they were given.
    assert list(itertools.chain(*wire.requests)) == [f"m{i}" for i in range(35)]


def test_each_batch_retries_its_own_failures(wire: Wire) -> None:
    wire.fail_once = {"m3", "m27"}  # one entry in the first batch, one in the third
    wire.whole_call_failures = 1  # and one whole request
    with cloudqueue.open_producer("wire://q", max_concurrent_batches=3, retry=FAST_RETRY) as producer:
        ids = producer.send_batch(bodies(30))
    assert_ids_in_order(ids, 30)
    sizes = sorted(len(request) for request in wire.requests)
    # Three first attempts (one refused whole, resent whole) and the two entries alone.
    assert sizes == [1, 1, 10, 10, 10, 10]


def test_a_batch_that_keeps_failing_is_reported_and_the_others_sent(wire: Wire) -> None:
    wire.barrier = threading.Barrier(2)
    wire.refuse = {"m4", "m15"}
    with cloudqueue.open_producer("wire://q", max_concurrent_batches=2) as producer:
        with pytest.raises(cloudqueue.SendBatchError) as info:
            producer.send_batch(bodies(20))
    results = info.value.results
    assert [i for i, r in enumerate(results) if isinstance(r, cloudqueue.InvalidArgument)] == [4, 15]
    assert_ids_in_order([r if isinstance(r, str) else f"m{i}@" for i, r in enumerate(results)], 20)


def test_a_cancelled_async_send_leaves_no_request_counted_in_flight(wire: Wire) -> None:
    async def main() -> None:
        wire.hang_when = 3
        wire.all_hanging = asyncio.Event()
        async with cloudqueue.aio.open_producer("wire://q", max_concurrent_batches=3) as producer:
            sending = asyncio.create_task(producer.send_batch(bodies(30)))
            async with asyncio.timeout(BARRIER_TIMEOUT):  # a guard against hanging, not a bar
                await wire.all_hanging.wait()  # three requests under way at once
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            assert wire.active == 0  # every request was cancelled, none left behind
            wire.hang_when = None
            # The slots are free again: a later send goes through, and close does not hang.
            ids = await producer.send_batch(bodies(30))
        assert_ids_in_order(ids, 30)

    asyncio.run(main())
