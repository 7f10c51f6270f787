"""Per-key sequencing in the consumer engine: one unsettled message per ordering key,
whatever the server returns (see ``cloudqueue._engine.ordering``).

Most tests run against :mod:`loose_server`, a server that returns several messages of
a key per batch and redelivers a key from a nacked or expired message on, as Pub/Sub
does; the property tests also run on the memory provider, whose server keeps keys
in order itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from loose_server import LooseServer

import cloudqueue
from cloudqueue._engine.ordering import Admission, KeyLines
from cloudqueue.driver import Delivery


def _delivery(key: str, index: int) -> Delivery:
    return Delivery(token=index, id=f"{key}{index}", body=b"", attributes={},
                    delivery_attempt=1, ordering_key=key)


# -- the bookkeeping alone ------------------------------------------------------------

def test_key_lines_park_followers_and_advance_in_order() -> None:
    lines = KeyLines()
    epoch = lines.pull_started()
    a0, a1, a2, b0 = _delivery("a", 0), _delivery("a", 1), _delivery("a", 2), _delivery("b", 0)
    assert [lines.admit(d, d.ordering_key or "", epoch) for d in (a0, a1, b0, a2)] == [
        Admission.HEAD, Admission.PARK, Admission.HEAD, Admission.PARK,
    ]
    assert lines.advance(a1, "a") is None  # not the head: nothing moves
    assert lines.advance(a0, "a") is a1
    assert lines.advance(a1, "a") is a2
    assert lines.advance(a2, "a") is None
    assert "a" not in lines.heads and "a" not in lines.parked


def test_a_reset_returns_the_followers_and_drains_the_key() -> None:
    lines = KeyLines()
    first = lines.pull_started()
    a0, a1, a2 = _delivery("a", 0), _delivery("a", 1), _delivery("a", 2)
    for delivery in (a0, a1, a2):
        lines.admit(delivery, "a", first)
    under_way = lines.pull_started()  # a pull under way when the drain begins
    lines.giving_back("a")  # the nack of a0
    assert lines.reset(a0, "a") == [a1, a2]
    assert lines.draining == {"a": 3}
    # Whatever comes of the key while it drains goes back too.
    assert lines.admit(_delivery("a", 0), "a", under_way) is Admission.GIVE_BACK
    for _ in range(4):
        lines.given_back("a")
    assert lines.draining == {}
    # The pull under way when the drain began may have taken the key out of order.
    assert lines.admit(_delivery("a", 1), "a", under_way) is Admission.GIVE_BACK
    lines.given_back("a")
    # A pull started after the drain sees the key in order again.
    assert lines.admit(_delivery("a", 0), "a", lines.pull_started()) is Admission.HEAD
    lines.no_pulls_under_way()


def test_a_reset_of_a_parked_follower_returns_it_and_those_behind() -> None:
    lines = KeyLines()
    epoch = lines.pull_started()
    a0, a1, a2 = _delivery("a", 0), _delivery("a", 1), _delivery("a", 2)
    for delivery in (a0, a1, a2):
        lines.admit(delivery, "a", epoch)
    assert lines.is_parked(a1, "a")
    assert lines.reset(a1, "a") == [a1, a2]
    assert lines.heads == {"a": a0} and "a" not in lines.parked


# -- the engine on a loose server -----------------------------------------------------

def test_several_messages_of_a_key_in_one_batch_go_out_one_at_a_time() -> None:
    server = LooseServer({"a": 3, "b": 2})
    with server.consumer() as consumer:
        first = consumer.receive(max_messages=10, wait=1.0)
        assert sorted(m.id for m in first) == ["a-0", "b-0"]
        assert consumer.receive(max_messages=10, wait=0.2) == []  # the rest are parked
        by_id = {m.id: m for m in first}
        by_id["a-0"].ack()
        (a1,) = consumer.receive(max_messages=10, wait=1.0)
        assert a1.id == "a-1"
        a1.ack()
        by_id["b-0"].ack()
        rest = consumer.receive(max_messages=10, wait=1.0)
        assert sorted(m.id for m in rest) == ["a-2", "b-1"]
        for message in rest:
            message.ack()
    assert server.acked == {"a": [0, 1, 2], "b": [0, 1]}


def test_a_nack_gives_the_followers_back_and_the_key_restarts_in_order() -> None:
    server = LooseServer({"a": 4})
    seen: list[str] = []
    with server.consumer() as consumer:
        nacked = False
        deadline = time.monotonic() + 20
        while server.outstanding() and time.monotonic() < deadline:
            for message in consumer.receive(max_messages=10, wait=0.5):
                seen.append(message.id)
                if message.id == "a-1" and not nacked:
                    nacked = True
                    message.nack()
                else:
                    message.ack()
    assert server.acked == {"a": [0, 1, 2, 3]}
    assert seen[:3] == ["a-0", "a-1", "a-1"]


def test_parked_followers_count_against_max_in_flight() -> None:
    server = LooseServer({"a": 5, "b": 5})
    with server.consumer(max_in_flight=4) as consumer:
        (head,) = consumer.receive(max_messages=1, wait=1.0)
        assert head.id == "a-0"
        # a-0 out, a-1..a-3 parked: the cap is reached and b is never pulled.
        assert consumer.receive(max_messages=10, wait=0.3) == []
        head.ack()
        (follower,) = consumer.receive(max_messages=10, wait=1.0)
        assert follower.id == "a-1"
        follower.ack()


def test_a_lost_lease_fails_the_ack_and_the_key_restarts_from_it() -> None:
    server = LooseServer({"a": 3}, lease=0.6)
    with server.consumer() as consumer:
        (head,) = consumer.receive(max_messages=10, wait=1.0)
        server.expire(head.delivery.token)
        # The next renewal is refused: the consumer gives the followers back, and
        # the server delivers the key again from the lost message on.
        deadline = time.monotonic() + 10
        again: list[cloudqueue.ReceivedMessage] = []
        while not again and time.monotonic() < deadline:
            again = consumer.receive(max_messages=10, wait=0.5)
        assert [m.id for m in again] == ["a-0"]
        with pytest.raises(cloudqueue.LeaseLost, match=r"a-0.*may be delivered again"):
            head.ack()
        for index in range(3):
            (message,) = again if index == 0 else consumer.receive(max_messages=10, wait=2.0)
            assert message.id == f"a-{index}"
            message.ack()
    assert server.acked == {"a": [0, 1, 2]}


def test_a_parked_message_whose_lease_is_nearly_over_is_given_back_not_handed_out() -> None:
    server = LooseServer({"a": 3}, lease=0.6)
    with server.consumer(max_lease_extension=0) as consumer:
        (head,) = consumer.receive(max_messages=10, wait=1.0)
        time.sleep(0.5)  # a-1 and a-2, parked unrenewed, have about 0.1 s left
        head.ack()
        for index in (1, 2):
            (message,) = consumer.receive(max_messages=10, wait=2.0)
            assert message.id == f"a-{index}"
            message.ack()
    assert server.acked == {"a": [0, 1, 2]}
    assert server.deliveries["a-1"] == 2  # given back, then delivered afresh


def test_close_gives_parked_messages_back() -> None:
    server = LooseServer({"a": 3})
    consumer = server.consumer()
    (_head,) = consumer.receive(max_messages=10, wait=1.0)
    consumer.close()
    # Nothing is leased any more except the unsettled head, which the lease keeps.
    with server.lock:
        leased = [m.index for m in server._keys["a"] if m.ack_id is not None]
    assert leased == [0]


def test_the_asyncio_consumer_sequences_keys_too() -> None:
    server = LooseServer({"a": 3, "b": 3})

    async def run() -> list[str]:
        order: list[str] = []
        async with server.async_consumer() as consumer:
            while server.outstanding():
                batch = await consumer.receive(max_messages=10, wait=1.0)
                keys = Counter(m.ordering_key for m in batch)
                assert max(keys.values(), default=0) <= 1
                for message in batch:
                    order.append(message.id)
                    await message.ack()
        return order

    order = asyncio.run(asyncio.wait_for(run(), 30))
    assert [i for i in order if i.startswith("a")] == ["a-0", "a-1", "a-2"]
    assert server.acked == {"a": [0, 1, 2], "b": [0, 1, 2]}


# -- properties -------------------------------------------------------------------------

#: (operation, which in-hand message it applies to)
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["receive", "ack", "ack", "nack", "expire"]), st.integers(0, 5)),
    max_size=25,
)


def _run_interleaving(
    consumer: cloudqueue.Consumer, operations: list[tuple[str, int]], expire: object,
    acked: dict[str, list[int]], done: object,
) -> None:
    """Apply ``operations`` and check that no two unsettled messages of a key are ever
    in hand at once; then drain, acking in hand-out order."""
    in_hand: list[cloudqueue.ReceivedMessage] = []

    def settle(message: cloudqueue.ReceivedMessage, ack: bool) -> None:
        in_hand.remove(message)
        if ack:
            message.ack()
            key, index = message.text().rsplit("-", 1)
            acked.setdefault(key, []).append(int(index))
        else:
            message.nack()

    for operation, which in operations:
        if operation == "receive":
            in_hand.extend(consumer.receive(max_messages=which + 1, wait=0.05))
            keys = [m.ordering_key for m in in_hand]
            assert len(keys) == len(set(keys)), f"two messages of one key in hand: {in_hand}"
        elif in_hand:
            message = in_hand[which % len(in_hand)]
            if operation == "expire":
                if expire is not None:
                    in_hand.remove(message)  # the handler lost it: never settled
                    expire(message)  # type: ignore[operator]
            else:
                settle(message, operation == "ack")
    for message in list(in_hand):
        settle(message, True)
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        batch = consumer.receive(max_messages=10, wait=0.1)
        keys = [m.ordering_key for m in batch]
        assert len(keys) == len(set(keys))
        for message in batch:
            in_hand.append(message)
            settle(message, True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS)
def test_acks_follow_publish_order_on_a_loose_server(operations: list[tuple[str, int]]) -> None:
    server = LooseServer({"a": 4, "b": 3, "c": 2}, lease=0.5)
    acked: dict[str, list[int]] = {}
    with server.consumer(settle_delay=0.0) as consumer:
        _run_interleaving(
            consumer, operations, lambda m: server.expire(m.delivery.token), acked,
            lambda: server.outstanding() == 0,
        )
    assert server.acked == {"a": [0, 1, 2, 3], "b": [0, 1, 2], "c": [0, 1]}
    assert acked == server.acked


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS)
def test_acks_follow_publish_order_on_the_memory_provider(operations: list[tuple[str, int]]) -> None:
    url = f"memory://ordered-{time.monotonic_ns()}"
    cloudqueue.declare(url, ordered=True, lease=30.0)
    counts = {"a": 4, "b": 3, "c": 2}
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([
            cloudqueue.Message(f"{key}-{index}", ordering_key=key)
            for index in range(max(counts.values()))
            for key, count in counts.items() if index < count
        ])
    acked: dict[str, list[int]] = {}
    total = sum(counts.values())
    # Memory leases end by the clock only; "expire" is not exercised here.
    with cloudqueue.open_consumer(url, settle_delay=0.0) as consumer:
        _run_interleaving(
            consumer, operations, None, acked, lambda: sum(map(len, acked.values())) >= total,
        )
    assert acked == {key: list(range(count)) for key, count in counts.items()}
    cloudqueue.delete(url)
