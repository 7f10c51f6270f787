"""Ordering keys: one outstanding message per key, nacked and expired ones come back first."""

from __future__ import annotations

import threading
from typing import Any

from conftest import SubscriptionFactory, pull_now, pull_until
from google.cloud import pubsub_v1


def publish_ordered(
    publisher: pubsub_v1.PublisherClient, topic: str, items: list[tuple[str, bytes]]
) -> None:
    futures = [publisher.publish(topic, data, ordering_key=key) for key, data in items]
    for future in futures:
        future.result(timeout=10)


def test_one_outstanding_message_per_key(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_ordered(
        ordered_publisher,
        topic,
        [("a", b"a1"), ("b", b"b1"), ("a", b"a2"), ("b", b"b2"), ("a", b"a3")],
    )
    heads = pull_until(subscriber, subscription, 2)
    assert sorted(m.message.data for m in heads) == [b"a1", b"b1"]
    assert all(m.message.ordering_key == m.message.data.decode()[0] for m in heads)
    assert pull_now(subscriber, subscription) == []  # a2, b2 wait for their heads

    by_data = {m.message.data: m for m in heads}
    subscriber.acknowledge(subscription=subscription, ack_ids=[by_data[b"a1"].ack_id])
    assert [m.message.data for m in pull_now(subscriber, subscription)] == [b"a2"]


def test_nacked_head_comes_back_before_the_rest_of_its_key(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_ordered(ordered_publisher, topic, [("k", b"1"), ("k", b"2"), ("k", b"3")])
    order: list[bytes] = []
    nacked = False
    while len(order) < 4:
        [message] = pull_until(subscriber, subscription, 1)
        order.append(message.message.data)
        if message.message.data == b"2" and not nacked:
            nacked = True
            subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=0
            )
        else:
            subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])
    assert order == [b"1", b"2", b"2", b"3"]


def test_expired_head_comes_back_before_the_rest_of_its_key(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    publish_ordered(ordered_publisher, topic, [("k", b"1"), ("k", b"2")])
    [first] = pull_until(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    [again] = pull_until(subscriber, subscription, 1, timeout=5)
    assert again.message.data == b"1"
    subscriber.acknowledge(subscription=subscription, ack_ids=[again.ack_id])
    assert [m.message.data for m in pull_until(subscriber, subscription, 1)] == [b"2"]


def test_without_ordering_on_the_subscription_keys_are_ignored(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_ordered(ordered_publisher, topic, [("k", b"1"), ("k", b"2"), ("k", b"3")])
    assert len(pull_until(subscriber, subscription, 3)) == 3


def test_subscribe_delivers_each_key_in_order(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(enable_message_ordering=True)
    keys = ["red", "green", "blue"]
    per_key = 30
    received: dict[str, list[int]] = {key: [] for key in keys}
    lock = threading.Lock()
    done = threading.Event()
    nacked: set[bytes] = set()

    def callback(message: Any) -> None:
        # Nack every 7th message once: order must survive redelivery.
        number = int(message.data.split(b"-")[1])
        if number % 7 == 3 and message.data not in nacked:
            nacked.add(message.data)
            message.nack()
            return
        with lock:
            received[message.ordering_key].append(number)
            if sum(map(len, received.values())) == per_key * len(keys):
                done.set()
        message.ack()

    future = subscriber.subscribe(subscription, callback)
    try:
        items = [(key, f"{key}-{i}".encode()) for i in range(per_key) for key in keys]
        publish_ordered(ordered_publisher, topic, items)
        assert done.wait(timeout=20), received
    finally:
        future.cancel()
        future.result(timeout=10)
    assert received == {key: list(range(per_key)) for key in keys}
