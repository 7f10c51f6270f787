"""Exactly-once delivery: acknowledgements and deadline changes report the ack IDs that failed.

Through the official client: the unary calls raise INVALID_ARGUMENT carrying the ErrorInfo the
client libraries parse, and the streaming subscriber's ``ack_with_response()`` succeeds or
raises ``AcknowledgeError`` from it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import SubscriptionFactory, publish_all, pull_until, streaming
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber import exceptions as subscriber_exceptions

from cloudqueue_pubsub.testing import PubSubServer

INVALID = "PERMANENT_FAILURE_INVALID_ACK_ID"


def test_the_setting_is_stored_and_updatable(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    name = make_subscription(enable_exactly_once_delivery=True)
    assert subscriber.get_subscription(subscription=name).enable_exactly_once_delivery
    updated = subscriber.update_subscription(
        request={
            "subscription": {"name": name, "enable_exactly_once_delivery": False},
            "update_mask": {"paths": ["enable_exactly_once_delivery"]},
        }
    )
    assert not updated.enable_exactly_once_delivery


def test_a_valid_ack_id_acknowledges_and_a_stale_one_is_reported(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(enable_exactly_once_delivery=True)
    publish_all(publisher, topic, b"once", b"twice")
    first, second = pull_until(subscriber, subscription, 2)
    subscriber.acknowledge(subscription=subscription, ack_ids=[first.ack_id])
    assert server.broker.backlog(subscription) == 1

    # Acknowledging again, and a nack that made the lease end, leave stale ack IDs.
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[second.ack_id], ack_deadline_seconds=0
    )
    with pytest.raises(exceptions.InvalidArgument) as failed:
        subscriber.acknowledge(
            subscription=subscription, ack_ids=[first.ack_id, second.ack_id, "made-up"]
        )
    assert failed.value.reason == "EXACTLY_ONCE_ACKID_FAILURE"
    assert failed.value.domain == "pubsub.googleapis.com"
    assert failed.value.metadata == {first.ack_id: INVALID, second.ack_id: INVALID, "made-up": INVALID}
    # The stale ack ID did not acknowledge the redelivered message.
    [again] = pull_until(subscriber, subscription, 1)
    assert again.message.data == b"twice"
    assert again.ack_id != second.ack_id


def test_modify_ack_deadline_reports_stale_ids_and_applies_valid_ones(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(enable_exactly_once_delivery=True)
    publish_all(publisher, topic, b"kept", b"settled")
    kept, settled = pull_until(subscriber, subscription, 2)
    subscriber.acknowledge(subscription=subscription, ack_ids=[settled.ack_id])
    with pytest.raises(exceptions.InvalidArgument) as failed:
        subscriber.modify_ack_deadline(
            subscription=subscription,
            ack_ids=[kept.ack_id, settled.ack_id],
            ack_deadline_seconds=60,
        )
    assert failed.value.metadata == {settled.ack_id: INVALID}
    # The valid ID was extended and still acknowledges.
    subscriber.acknowledge(subscription=subscription, ack_ids=[kept.ack_id])
    assert server.broker.backlog(subscription) == 0


def test_without_exactly_once_stale_ack_ids_are_ignored(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"x")
    [received] = pull_until(subscriber, subscription, 1)
    subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
    subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id, "made-up"])


def test_streaming_ack_with_response_succeeds_or_raises_acknowledge_error(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(enable_exactly_once_delivery=True)
    outcomes: dict[bytes, Any] = {}
    started: set[bytes] = set()
    done = threading.Condition()

    def callback(message: Any) -> None:
        with done:
            if message.data in started:
                # A redelivery of the invalidated message: settle it without waiting, so that
                # no callback is left waiting on an acknowledgement when the stream stops.
                message.ack()
                return
            started.add(message.data)
        if message.data == b"invalidated":
            # Another client nacks it first: this delivery's ack ID is no longer valid.
            subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=0
            )
        try:
            outcome: Any = message.ack_with_response().result(timeout=30)
        except subscriber_exceptions.AcknowledgeError as error:
            outcome = error.error_code
        with done:
            outcomes[message.data] = outcome
            done.notify_all()

    with streaming(subscriber, subscription, callback):
        publish_all(publisher, topic, b"fine", b"invalidated")
        with done:
            assert done.wait_for(lambda: len(outcomes) == 2, 30)
    assert outcomes[b"fine"] == subscriber_exceptions.AcknowledgeStatus.SUCCESS
    assert outcomes[b"invalidated"] == subscriber_exceptions.AcknowledgeStatus.INVALID_ACK_ID


def test_stream_announces_exactly_once_delivery(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(enable_exactly_once_delivery=True)
    publish_all(publisher, topic, b"x")
    finished = threading.Event()

    def requests() -> Any:
        yield pubsub_v1.types.StreamingPullRequest(
            subscription=subscription, stream_ack_deadline_seconds=10
        )
        finished.wait(30)  # keep the stream open until the test has its response

    stream = subscriber.streaming_pull(requests=requests())
    try:
        response = next(iter(stream))
    finally:
        finished.set()
        stream.cancel()
    assert response.subscription_properties.exactly_once_delivery_enabled
    assert [r.message.data for r in response.received_messages] == [b"x"]
