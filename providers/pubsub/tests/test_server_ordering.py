"""Ordering keys, driven through the official client, delivered as the real service documents.

A response may carry several messages of one key, in publish order; a key's outstanding
messages block its later ones from other deliveries; a nack or an expiry redelivers the failed
message and every later message of its key already delivered (acknowledged ones included), in
publish order.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from conftest import SubscriptionFactory, pull_now, pull_until, unique
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2
from test_server_streaming import open_stream

from cloudqueue_pubsub.testing import PubSubServer

KEYS = ("red", "green", "blue")


def publish_ordered(
    publisher: pubsub_v1.PublisherClient, topic: str, items: list[tuple[str, bytes]]
) -> None:
    futures = [publisher.publish(topic, data, ordering_key=key) for key, data in items]
    for future in futures:
        future.result(timeout=10)


def publish_keys(
    publisher: pubsub_v1.PublisherClient, topic: str, per_key: int, keys: tuple[str, ...] = KEYS
) -> None:
    """``key-0``, ``key-1``... for every key, the keys interleaved."""
    publish_ordered(
        publisher, topic, [(key, f"{key}-{i}".encode()) for i in range(per_key) for key in keys]
    )


def number(received: Any) -> int:
    return int(received.message.data.split(b"-")[1])


def by_key(received: list[Any]) -> dict[str, list[int]]:
    """Message numbers per ordering key, in the order received."""
    result: dict[str, list[int]] = {}
    for item in received:
        assert item.message.data.startswith(item.message.ordering_key.encode() + b"-")
        result.setdefault(item.message.ordering_key, []).append(number(item))
    return result


def ack(subscriber: pubsub_v1.SubscriberClient, subscription: str, received: list[Any]) -> None:
    subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received])


def modify(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, received: list[Any], seconds: int
) -> None:
    subscriber.modify_ack_deadline(
        subscription=subscription,
        ack_ids=[m.ack_id for m in received],
        ack_deadline_seconds=seconds,
    )


def test_a_pull_carries_several_messages_of_a_key_in_publish_order(
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_keys(ordered_publisher, topic, 20)
    assert server.broker.backlog(subscription) == 60

    first = pull_now(subscriber, subscription, max_messages=50)
    assert len(first) == 50
    numbers = by_key(first)
    assert sorted(numbers) == sorted(KEYS)
    for key in KEYS:
        # Several of each key in one response, from the first one on, in publish order.
        assert numbers[key] == list(range(len(numbers[key]))), numbers
        assert len(numbers[key]) > 1
    # Every key has outstanding messages: their later messages wait for them.
    assert pull_now(subscriber, subscription) == []
    assert server.broker.backlog(subscription) == 60

    ack(subscriber, subscription, first)
    assert server.broker.backlog(subscription) == 10
    rest = pull_now(subscriber, subscription, max_messages=50)
    assert by_key(rest) == {
        key: list(range(len(numbers[key]), 20)) for key in KEYS if len(numbers[key]) < 20
    }
    ack(subscriber, subscription, rest)
    assert server.broker.backlog(subscription) == 0
    assert pull_now(subscriber, subscription) == []


def test_max_messages_cuts_a_key_and_the_rest_of_it_waits_for_the_outstanding_ones(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_keys(ordered_publisher, topic, 4, keys=("a",))
    publish_keys(ordered_publisher, topic, 1, keys=("b",))  # published after all of a
    first = pull_now(subscriber, subscription, max_messages=2)
    assert by_key(first) == {"a": [0, 1]}
    # Another Pull gets the other key only: a-2 must not go out while a-0 and a-1 are out.
    other = pull_now(subscriber, subscription)
    assert by_key(other) == {"b": [0]}
    ack(subscriber, subscription, first[:1])
    assert pull_now(subscriber, subscription) == []  # a-1 is still outstanding
    ack(subscriber, subscription, first[1:])
    assert by_key(pull_now(subscriber, subscription)) == {"a": [2, 3]}


def test_nack_redelivers_the_message_and_every_later_one_of_its_key_in_order(
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_keys(ordered_publisher, topic, 20)
    received = pull_now(subscriber, subscription, max_messages=100)
    assert by_key(received) == {key: list(range(20)) for key in KEYS}
    green = [m for m in received if m.message.ordering_key == "green"]
    ack(subscriber, subscription, [m for m in received if m.message.ordering_key != "green"])
    # green-5 and green-6 are acknowledged before green-2 fails: documented to come back too.
    ack(subscriber, subscription, green[:2] + green[5:7])
    assert server.broker.backlog(subscription) == 16

    modify(subscriber, subscription, green[2:3], 0)  # nack the third message of the key
    assert server.broker.backlog(subscription) == 18
    # Acks that arrive with the old ack IDs after the nack must not lose the redelivery.
    ack(subscriber, subscription, green[3:])

    again = pull_now(subscriber, subscription, max_messages=100)
    assert by_key(again) == {"green": list(range(2, 20))}
    assert all(m.ack_id not in {old.ack_id for old in green} for m in again)
    ack(subscriber, subscription, again)
    assert server.broker.backlog(subscription) == 0
    assert pull_now(subscriber, subscription) == []


def test_expired_lease_redelivers_the_message_and_every_later_one_of_its_key(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_keys(ordered_publisher, topic, 6, keys=("k",))
    received = pull_now(subscriber, subscription)
    assert by_key(received) == {"k": [0, 1, 2, 3, 4, 5]}
    ack(subscriber, subscription, received[:2] + received[4:5])  # k-0, k-1 and k-4
    modify(subscriber, subscription, received[3:4], 60)  # k-3 extended, k-5 left at 10 s
    shortened_at = time.monotonic()
    modify(subscriber, subscription, received[2:3], 1)  # k-2 expires after a second
    assert pull_now(subscriber, subscription) == []  # nothing of k while k-2.. are out

    again = pull_until(subscriber, subscription, 4, timeout=5)
    assert time.monotonic() - shortened_at >= 1.0
    assert by_key(again) == {"k": [2, 3, 4, 5]}
    # The extended lease of k-3 was cancelled with the rewind: its old ack ID does nothing.
    ack(subscriber, subscription, received[3:4])
    ack(subscriber, subscription, again)
    assert pull_now(subscriber, subscription) == []


def test_redelivery_waits_for_earlier_outstanding_messages_of_the_key(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_keys(ordered_publisher, topic, 4, keys=("k",))
    received = pull_now(subscriber, subscription)
    assert by_key(received) == {"k": [0, 1, 2, 3]}
    modify(subscriber, subscription, received[2:3], 0)  # nack k-2 while k-0 and k-1 are out
    assert pull_now(subscriber, subscription) == []
    ack(subscriber, subscription, received[:1])
    assert pull_now(subscriber, subscription) == []  # k-1 still out
    ack(subscriber, subscription, received[1:2])
    again = pull_now(subscriber, subscription)
    assert by_key(again) == {"k": [2, 3]}
    ack(subscriber, subscription, again)
    assert pull_now(subscriber, subscription) == []


def test_messages_without_a_key_are_not_held_back_by_keys(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_ordered(ordered_publisher, topic, [("k", b"k-0"), ("k", b"k-1")])
    keyed = pull_now(subscriber, subscription)
    assert by_key(keyed) == {"k": [0, 1]}
    publish_ordered(ordered_publisher, topic, [("", b"free-0"), ("k", b"k-2"), ("", b"free-1")])
    unkeyed = pull_now(subscriber, subscription)
    assert [m.message.data for m in unkeyed] == [b"free-0", b"free-1"]
    # A nacked message without a key comes back alone.
    modify(subscriber, subscription, unkeyed[:1], 0)
    assert [m.message.data for m in pull_now(subscriber, subscription)] == [b"free-0"]


def test_without_ordering_on_the_subscription_keys_are_ignored(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_keys(ordered_publisher, topic, 3, keys=("k",))
    received = pull_now(subscriber, subscription)
    assert by_key(received) == {"k": [0, 1, 2]}
    modify(subscriber, subscription, received[1:2], 0)
    # Only the nacked message comes back; the others stay with the first Pull.
    assert by_key(pull_now(subscriber, subscription)) == {"k": [1]}


def test_retry_backoff_holds_the_whole_key_back(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(
        enable_message_ordering=True,
        retry_policy={
            "minimum_backoff": duration_pb2.Duration(seconds=1),
            "maximum_backoff": duration_pb2.Duration(seconds=1),
        },
    )
    publish_keys(ordered_publisher, topic, 3, keys=("k",))
    received = pull_now(subscriber, subscription)
    assert by_key(received) == {"k": [0, 1, 2]}
    ack(subscriber, subscription, received[1:])
    nacked_at = time.monotonic()
    modify(subscriber, subscription, received[:1], 0)
    assert pull_now(subscriber, subscription) == []  # k-0 backs off, and k-1, k-2 behind it
    again = pull_until(subscriber, subscription, 3, timeout=5)
    assert time.monotonic() - nacked_at >= 1.0
    assert by_key(again) == {"k": [0, 1, 2]}


def test_dead_lettered_message_lets_its_key_move_on(
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    dead_letter_topic = unique("topics")
    ordered_publisher.create_topic(name=dead_letter_topic)
    dead_letters = make_subscription(dead_letter_topic, enable_message_ordering=True)
    subscription = make_subscription(
        enable_message_ordering=True,
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5},
    )
    publish_ordered(ordered_publisher, topic, [("k", b"k-0"), ("k", b"k-1")])
    attempts = []
    for _ in range(5):
        poison, after = pull_until(subscriber, subscription, 2)
        assert (number(poison), number(after)) == (0, 1)
        # k-1 is redelivered with k-0 each time, and counts as redelivered.
        attempts.append((poison.delivery_attempt, after.delivery_attempt))
        modify(subscriber, subscription, [poison], 0)
    assert attempts == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    # The fifth nack forwarded k-0 without rewinding the key: k-1 stays with its Pull.
    assert pull_now(subscriber, subscription) == []
    assert server.broker.backlog(subscription) == 1
    ack(subscriber, subscription, [after])
    assert server.broker.backlog(subscription) == 0

    [forwarded] = pull_until(subscriber, dead_letters, 1)
    assert forwarded.message.data == b"k-0"
    assert forwarded.message.ordering_key == "k"
    assert forwarded.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


def test_dead_lettered_head_releases_the_next_message_of_its_key(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    dead_letter_topic = unique("topics")
    ordered_publisher.create_topic(name=dead_letter_topic)
    subscription = make_subscription(
        enable_message_ordering=True,
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5},
    )
    publish_ordered(ordered_publisher, topic, [("k", b"k-0"), ("k", b"k-1")])
    for attempt in range(1, 6):
        [poison] = pull_until(subscriber, subscription, 1, max_messages=1)
        assert (number(poison), poison.delivery_attempt) == (0, attempt)
        # Expiry counts like a nack, also for the last attempt.
        modify(subscriber, subscription, [poison], 0 if attempt < 5 else 1)
    [after] = pull_until(subscriber, subscription, 1, timeout=5)
    assert (number(after), after.delivery_attempt) == (1, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_pulls_acks_and_nacks_keep_every_key_in_order(
    seed: int,
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    """Unary Pulls, acks and nacks in random order, checked against what the documentation
    implies after every step: each key goes out in publish order from its rewind point, never
    while an earlier delivery of it is outstanding, a Pull takes everything it may, stale ack
    IDs change nothing, and the backlog counts exactly the messages not acknowledged."""
    rng = random.Random(seed)
    subscription = make_subscription(enable_message_ordering=True)
    keys = ("a", "b", "c", "d")
    published = dict.fromkeys(keys, 0)
    next_number = dict.fromkeys(keys, 0)  # the next message of each key to go out
    acked: dict[str, set[int]] = {key: set() for key in keys}
    leases: dict[str, tuple[str, int]] = {}  # valid ack ID -> (key, number)
    stale: list[str] = []

    def rewind(key: str, number: int) -> None:
        for ack_id, (k, n) in list(leases.items()):
            if k == key and n >= number:
                del leases[ack_id]
                stale.append(ack_id)
        next_number[key] = number
        acked[key] -= {n for n in acked[key] if n >= number}

    for _ in range(120):
        step = rng.random()
        if step < 0.2:
            batch = []
            for key in rng.sample(keys, rng.randint(1, len(keys))):
                for _ in range(rng.randint(1, 4)):
                    batch.append((key, f"{key}-{published[key]}".encode()))
                    published[key] += 1
            publish_ordered(ordered_publisher, topic, batch)
        elif step < 0.55:
            max_messages = rng.randint(1, 8)
            busy = {key for key, _ in leases.values()}
            response = pull_now(subscriber, subscription, max_messages=max_messages)
            assert len(response) <= max_messages
            for item in response:
                key, n = item.message.ordering_key, number(item)
                assert key not in busy, (key, n, "went out while the key was outstanding")
                assert n == next_number[key], (key, n, next_number[key])
                next_number[key] += 1
                leases[item.ack_id] = (key, n)
            if len(response) < max_messages:  # nothing else was deliverable
                for key in keys:
                    assert key in busy or next_number[key] == published[key], key
        elif step < 0.8 and leases:
            chosen = rng.sample(sorted(leases), rng.randint(1, len(leases)))
            for ack_id in chosen:
                key, n = leases.pop(ack_id)
                acked[key].add(n)
            extra = rng.sample(stale, min(len(stale), 3))
            subscriber.acknowledge(subscription=subscription, ack_ids=chosen + extra)
        elif leases:
            ack_id = rng.choice(sorted(leases))
            key, n = leases[ack_id]
            extra = rng.sample(stale, min(len(stale), 2))
            modify_ids = [ack_id, *extra]
            subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=modify_ids, ack_deadline_seconds=0
            )
            rewind(key, n)
        unacked = sum(published.values()) - sum(map(len, acked.values()))
        assert server.broker.backlog(subscription) == unacked

    # Drain: everything still goes out, in order, and the backlog empties.
    for _ in range(50):
        if not leases and all(next_number[key] == published[key] for key in keys):
            break
        if leases:
            subscriber.acknowledge(subscription=subscription, ack_ids=list(leases))
            leases.clear()
        for item in pull_now(subscriber, subscription, max_messages=100):
            key, n = item.message.ordering_key, number(item)
            assert n == next_number[key], (key, n, next_number[key])
            next_number[key] += 1
            leases[item.ack_id] = (key, n)
    assert next_number == published
    assert server.broker.backlog(subscription) == 0
    assert pull_now(subscriber, subscription) == []


def test_a_keys_outstanding_messages_stay_on_one_stream(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    first = open_stream(subscriber, subscription, max_outstanding_messages=3)
    second = None
    try:
        publish_keys(ordered_publisher, topic, 5, keys=("k",))
        held = first.messages(3)
        assert by_key(held) == {"k": [0, 1, 2]}  # flow control cuts the key at three
        first.assert_quiet(0.3)

        second = open_stream(subscriber, subscription)
        # k-3 and k-4 must not go to another stream while k-0..k-2 are out on the first.
        second.assert_quiet(0.5)
        publish_ordered(ordered_publisher, topic, [("other", b"other-0")])
        assert by_key(second.messages(1)) == {"other": [0]}

        first.send(ack_ids=[held[0].ack_id])
        assert by_key(first.messages(1)) == {"k": [3]}
        # Nack k-2 on the stream while k-1 is still out there: k-2 and k-3 come back to that
        # stream (as its flow control allows), never to the other one.
        first.send(modify_deadline_ack_ids=[held[2].ack_id], modify_deadline_seconds=[0])
        again = first.messages(2)
        assert by_key(again) == {"k": [2, 3]}
        second.assert_quiet(0.3)
        # Acking k-2 and k-3 makes room; k-1 still out keeps k-4 on this stream too.
        first.send(ack_ids=[m.ack_id for m in again])
        assert by_key(first.messages(1)) == {"k": [4]}
        second.assert_quiet(0.3)
    finally:
        first.close()
        if second is not None:
            second.close()


def test_subscribe_delivers_each_key_in_publish_order_around_a_nack(
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    """The official client's subscribe() with ordering, nacking one message in each key's middle.

    The client hands a key to the callback one message at a time. After a nack it goes on with
    the messages of the key it already holds (their acks are now stale), then gets the nacked
    message and everything after it again, in order.
    """
    subscription = make_subscription(enable_message_ordering=True)
    per_key = 20
    nack_at = {"red": 2, "green": 9, "blue": 15}
    publish_keys(ordered_publisher, topic, per_key)  # all there before the stream opens

    expected = {key: list(range(per_key)) + list(range(at, per_key)) for key, at in nack_at.items()}
    seen: dict[str, list[int]] = {key: [] for key in KEYS}
    nacked: set[str] = set()
    lock = threading.Lock()
    done = threading.Event()

    def callback(message: Any) -> None:
        key = message.ordering_key
        value = int(message.data.split(b"-")[1])
        with lock:
            seen[key].append(value)
            first_nack = value == nack_at[key] and key not in nacked
            if first_nack:
                nacked.add(key)
            if all(len(seen[k]) >= len(expected[k]) for k in KEYS):
                done.set()
        if first_nack:
            message.nack()
        else:
            message.ack()

    future = subscriber.subscribe(subscription, callback)
    try:
        assert done.wait(timeout=20), seen
        give_up_at = time.monotonic() + 5
        while server.broker.backlog(subscription) and time.monotonic() < give_up_at:
            time.sleep(0.05)  # acks travel asynchronously from the client's dispatcher
        assert server.broker.backlog(subscription) == 0
        time.sleep(0.3)  # nothing more may arrive
    finally:
        future.cancel()
        future.result(timeout=10)
    assert seen == expected


def test_two_subscribers_never_process_a_key_out_of_order(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    """Two official clients on one subscription, messages arriving while both stream.

    A key's outstanding messages stay with one stream, so even when a key moves to the other
    client, its callbacks run in publish order across both clients.
    """
    subscription = make_subscription(enable_message_ordering=True)
    keys = tuple(f"key{i}" for i in range(6))
    per_key = 15
    processed: list[tuple[int, str, int]] = []
    lock = threading.Lock()
    done = threading.Event()

    def make_callback(client: int) -> Any:
        def callback(message: Any) -> None:
            with lock:
                processed.append((client, message.ordering_key, int(message.data.split(b"-")[1])))
                if len(processed) == per_key * len(keys):
                    done.set()
            time.sleep(0.002)  # some work, so that both clients get a share
            message.ack()

        return callback

    other = pubsub_v1.SubscriberClient()
    futures = [
        subscriber.subscribe(subscription, make_callback(0)),
        other.subscribe(subscription, make_callback(1)),
    ]
    try:
        for i in range(per_key):  # in rounds, so that keys become free and busy again
            round_items = [(key, f"{key}-{i}".encode()) for key in keys]
            publish_ordered(ordered_publisher, topic, round_items)
        assert done.wait(timeout=30), Counter((key, client) for client, key, _ in processed)
        time.sleep(0.3)  # nothing more may arrive
    finally:
        for future in futures:
            future.cancel()
            future.result(timeout=10)
        other.close()
    for key in keys:
        assert [n for _, k, n in processed if k == key] == list(range(per_key)), processed
