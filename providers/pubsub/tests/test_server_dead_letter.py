"""Dead-letter policy (delivery_attempt, forwarding) and retry-policy backoff."""

from __future__ import annotations

import time

from conftest import SubscriptionFactory, publish_all, pull_now, pull_until
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

from cloudqueue_pubsub.testing import PubSubServer


def nack(subscriber: pubsub_v1.SubscriberClient, subscription: str, message: object) -> None:
    subscriber.modify_ack_deadline(
        subscription=subscription,
        ack_ids=[message.ack_id],  # type: ignore[attr-defined]
        ack_deadline_seconds=0,
    )


def test_delivery_attempts_then_forwarding_to_the_dead_letter_topic(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
    dead_letter_topic: str,
) -> None:
    dead_letters = make_subscription(dead_letter_topic)
    subscription = make_subscription(
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5}
    )
    [message_id] = publish_all(publisher, topic, b"poison", origin="test")

    attempts = []
    for _ in range(5):
        [message] = pull_until(subscriber, subscription, 1)
        assert message.message.message_id == message_id
        attempts.append(message.delivery_attempt)
        nack(subscriber, subscription, message)
    assert attempts == [1, 2, 3, 4, 5]
    assert pull_now(subscriber, subscription) == []
    assert server.broker.backlog(subscription) == 0

    [forwarded] = pull_until(subscriber, dead_letters, 1)
    assert forwarded.message.data == b"poison"
    attributes = dict(forwarded.message.attributes)
    original_publish_time = attributes.pop("CloudPubSubDeadLetterSourceTopicPublishTime")
    assert original_publish_time.endswith("Z")
    project, subscription_id = subscription.split("/")[1], subscription.split("/")[3]
    assert attributes == {
        "origin": "test",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": subscription_id,
        "CloudPubSubDeadLetterSourceSubscriptionProject": project,
    }
    assert forwarded.delivery_attempt == 0  # the dead-letter subscription has no policy


def test_expiry_counts_as_a_failed_attempt(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
    dead_letter_topic: str,
) -> None:
    dead_letters = make_subscription(dead_letter_topic)
    subscription = make_subscription(
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5}
    )
    publish_all(publisher, topic, b"slow")
    for attempt in range(1, 6):
        [message] = pull_until(subscriber, subscription, 1)
        assert message.delivery_attempt == attempt
        if attempt < 5:
            nack(subscriber, subscription, message)
        else:
            subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=1
            )
    [forwarded] = pull_until(subscriber, dead_letters, 1, timeout=5)
    assert forwarded.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


def test_acked_messages_are_not_dead_lettered(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
    dead_letter_topic: str,
) -> None:
    dead_letters = make_subscription(dead_letter_topic)
    subscription = make_subscription(dead_letter_policy={"dead_letter_topic": dead_letter_topic})
    publish_all(publisher, topic, b"fine")
    for _ in range(4):
        [message] = pull_until(subscriber, subscription, 1)
        nack(subscriber, subscription, message)
    [message] = pull_until(subscriber, subscription, 1)
    assert message.delivery_attempt == 5
    subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])
    assert pull_now(subscriber, dead_letters) == []


def test_retry_policy_backs_off_exponentially(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(
        retry_policy={
            "minimum_backoff": duration_pb2.Duration(nanos=400_000_000),
            "maximum_backoff": duration_pb2.Duration(seconds=1),
        }
    )
    publish_all(publisher, topic, b"flaky")
    [message] = pull_until(subscriber, subscription, 1)
    gaps = []
    for _ in range(3):
        nack(subscriber, subscription, message)
        nacked_at = time.monotonic()
        assert pull_now(subscriber, subscription) == []  # backing off, not redelivered yet
        [message] = pull_until(subscriber, subscription, 1, timeout=5)
        gaps.append(time.monotonic() - nacked_at)
    # 0.4 s, then 0.8 s, then capped at 1 s.
    expected = [0.4, 0.8, 1.0]
    for gap, wanted in zip(gaps, expected, strict=True):
        assert wanted - 0.05 <= gap <= wanted + 0.6, gaps


def test_retry_backoff_also_applies_to_expiry(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription(
        retry_policy={"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 1}}
    )
    publish_all(publisher, topic, b"x")
    [message] = pull_until(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=1
    )
    started = time.monotonic()
    [again] = pull_until(subscriber, subscription, 1, timeout=6)
    assert 1.7 <= time.monotonic() - started <= 3.5  # 1 s lease + 1 s backoff
    assert again.message.message_id == message.message.message_id
