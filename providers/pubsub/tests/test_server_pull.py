"""Synchronous Pull, Acknowledge and ModifyAckDeadline: leases, nacks, expiry, extension."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import PULL_WAIT_SECONDS, SubscriptionFactory, publish_all, pull_now, pull_until
from google.api_core import exceptions
from google.cloud import pubsub_v1

from cloudqueue_pubsub.testing import PubSubServer


def test_pull_and_acknowledge(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, *(str(i).encode() for i in range(5)))

    first = pull_until(subscriber, subscription, 3, max_messages=3)
    assert [m.message.data for m in first] == [b"0", b"1", b"2"]
    rest = pull_until(subscriber, subscription, 2)
    assert [m.message.data for m in rest] == [b"3", b"4"]
    assert len({m.ack_id for m in first + rest}) == 5

    subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in first + rest])
    assert server.broker.backlog(subscription) == 0
    assert pull_now(subscriber, subscription) == []


def test_leased_messages_are_not_delivered_twice(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"only")
    assert len(pull_until(subscriber, subscription, 1)) == 1
    assert pull_now(subscriber, subscription) == []


def test_pull_without_return_immediately_waits_a_bounded_time(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    subscription = make_subscription()
    started = time.monotonic()
    response = subscriber.pull(subscription=subscription, max_messages=10)
    waited = time.monotonic() - started
    assert list(response.received_messages) == []
    assert PULL_WAIT_SECONDS * 0.8 <= waited < PULL_WAIT_SECONDS + 2


def test_waiting_pull_returns_as_soon_as_a_message_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long pull wait, so that only the publish can end the Pull early.
    with PubSubServer(pull_wait_seconds=10) as slow_server:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", slow_server.address)
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.create_topic(name="projects/p/topics/waiting").name
        subscription = subscriber.create_subscription(
            name="projects/p/subscriptions/waiting", topic=topic, ack_deadline_seconds=10
        ).name
        received: list[bytes] = []

        def pull() -> None:
            response = subscriber.pull(subscription=subscription, max_messages=10)
            received.extend(m.message.data for m in response.received_messages)

        thread = threading.Thread(target=pull)
        started = time.monotonic()
        thread.start()
        time.sleep(0.2)
        publish_all(publisher, topic, b"wake up")
        thread.join(timeout=5)
        assert received == [b"wake up"]
        assert time.monotonic() - started < 2
        publisher.stop()
        subscriber.close()


def test_nack_redelivers_at_once(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"a", b"b")
    first = pull_until(subscriber, subscription, 2)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first[0].ack_id], ack_deadline_seconds=0
    )
    [again] = pull_now(subscriber, subscription)
    assert again.message.data == b"a"
    assert again.message.message_id == first[0].message.message_id
    assert again.ack_id != first[0].ack_id

    # The first lease ended with the nack: acking it now does nothing.
    subscriber.acknowledge(subscription=subscription, ack_ids=[first[0].ack_id])
    subscriber.acknowledge(subscription=subscription, ack_ids=[again.ack_id, first[1].ack_id])
    assert pull_now(subscriber, subscription) == []


def test_expired_lease_is_redelivered(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"slow")
    [first] = pull_until(subscriber, subscription, 1)
    # Shorten the lease to one second instead of waiting out the 10 s minimum.
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    started = time.monotonic()
    [again] = pull_until(subscriber, subscription, 1, timeout=5)
    elapsed = time.monotonic() - started
    assert again.message.message_id == first.message.message_id
    assert 0.7 <= elapsed < 3


def test_extended_lease_is_not_redelivered_early(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"long job")
    [first] = pull_until(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=3
    )
    started = time.monotonic()
    assert pull_until(subscriber, subscription, 1, timeout=1.8) == []
    [again] = pull_until(subscriber, subscription, 1, timeout=5)
    assert again.message.message_id == first.message.message_id
    assert 2.5 <= time.monotonic() - started < 5


def test_ack_after_expiry_is_ignored_and_the_new_lease_counts(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"x")
    [first] = pull_until(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    [second] = pull_until(subscriber, subscription, 1, timeout=5)
    subscriber.acknowledge(subscription=subscription, ack_ids=[first.ack_id, "no-such-ack-id"])
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[second.ack_id], ack_deadline_seconds=0
    )
    [third] = pull_now(subscriber, subscription)
    assert third.message.message_id == first.message.message_id


@pytest.mark.parametrize("seconds", [-1, 601])
def test_modify_ack_deadline_range(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory, seconds: int
) -> None:
    subscription = make_subscription()
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.modify_ack_deadline(
            subscription=subscription, ack_ids=["1"], ack_deadline_seconds=seconds
        )


def test_pull_needs_positive_max_messages_and_an_existing_subscription(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    subscription = make_subscription()
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.pull(subscription=subscription, max_messages=0)
    missing = subscription + "-missing"
    with pytest.raises(exceptions.NotFound):
        subscriber.pull(subscription=missing, max_messages=1, return_immediately=True)
    with pytest.raises(exceptions.NotFound):
        subscriber.acknowledge(subscription=missing, ack_ids=["1"])
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.acknowledge(subscription=subscription, ack_ids=[])


def test_ten_thousand_messages_publish_pull_ack(
    server: PubSubServer,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    from google.pubsub_v1 import PublisherClient as GapicPublisherClient
    from google.pubsub_v1.types import PubsubMessage

    subscription = make_subscription()
    client = GapicPublisherClient()
    server.reset_counts()
    started = time.monotonic()
    for batch in range(10):
        client.publish(
            topic=topic,
            messages=[PubsubMessage(data=b"%d" % (batch * 1000 + i)) for i in range(1000)],
        )
    published = time.monotonic()
    seen: set[bytes] = set()
    while len(seen) < 10_000 and time.monotonic() - started < 30:
        response = subscriber.pull(subscription=subscription, max_messages=1000)
        seen.update(m.message.data for m in response.received_messages)
        subscriber.acknowledge(
            subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
        )
    finished = time.monotonic()
    assert len(seen) == 10_000
    assert server.broker.backlog(subscription) == 0
    counts = server.request_counts()
    assert counts["Publish"] == 10
    assert counts["Pull"] == counts["Acknowledge"] == 10
    print(
        f"\n10,000 messages: publish {published - started:.2f} s, "
        f"pull+ack {finished - published:.2f} s"
    )


def test_one_pull_returns_at_most_1000_messages(
    server: PubSubServer,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    from google.pubsub_v1 import PublisherClient as GapicPublisherClient
    from google.pubsub_v1.types import PubsubMessage

    subscription = make_subscription()
    client = GapicPublisherClient()
    for _ in range(2):
        client.publish(topic=topic, messages=[PubsubMessage(data=b"x") for _ in range(1000)])
    response = subscriber.pull(subscription=subscription, max_messages=5000)
    assert len(response.received_messages) == 1000


def test_concurrent_pullers_each_get_distinct_messages(
    server: PubSubServer,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    from google.pubsub_v1 import PublisherClient as GapicPublisherClient
    from google.pubsub_v1.types import PubsubMessage

    subscription = make_subscription(ack_deadline_seconds=60)
    client = GapicPublisherClient()
    for batch in range(5):
        client.publish(
            topic=topic,
            messages=[PubsubMessage(data=b"%d" % (batch * 1000 + i)) for i in range(1000)],
        )
    seen: list[bytes] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            response = subscriber.pull(
                subscription=subscription, max_messages=50, return_immediately=True
            )
            if not response.received_messages:
                return
            with lock:
                seen.extend(m.message.data for m in response.received_messages)
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)
    assert len(seen) == 5000
    assert len(set(seen)) == 5000
    assert server.broker.backlog(subscription) == 0
