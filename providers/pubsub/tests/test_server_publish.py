"""Publish: IDs and times, batches of 1,000, fan-out and the documented limits."""

from __future__ import annotations

import pytest
from conftest import SubscriptionFactory, publish_all, pull_now, pull_until, unique
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1 import PublisherClient as GapicPublisherClient
from google.pubsub_v1.types import PubsubMessage

from cloudqueue_pubsub.testing import PubSubServer


def test_publish_assigns_ids_and_publish_times(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    message_ids = publish_all(publisher, topic, b"one", b"two", colour="red")
    assert len(set(message_ids)) == 2

    received = pull_until(subscriber, subscription, 2)
    assert [m.message.data for m in received] == [b"one", b"two"]
    assert [m.message.message_id for m in received] == message_ids
    assert all(m.message.attributes == {"colour": "red"} for m in received)
    assert all(m.message.publish_time.timestamp() > 0 for m in received)
    assert all(m.delivery_attempt == 0 for m in received)  # no dead-letter policy


def test_a_batch_of_1000_is_one_request(
    server: PubSubServer,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    client = GapicPublisherClient()
    server.reset_counts()
    response = client.publish(
        topic=topic, messages=[PubsubMessage(data=str(i).encode()) for i in range(1000)]
    )
    assert len(set(response.message_ids)) == 1000
    assert server.request_counts() == {"Publish": 1}

    received = pull_until(subscriber, subscription, 1000)
    assert sorted(int(m.message.data) for m in received) == list(range(1000))
    assert [m.message.message_id for m in received] == list(response.message_ids)


def test_high_level_publisher_batches(
    server: PubSubServer, topic: str, make_subscription: SubscriptionFactory
) -> None:
    batching = pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.05)
    publisher = pubsub_v1.PublisherClient(batch_settings=batching)
    server.reset_counts()
    futures = [publisher.publish(topic, str(i).encode()) for i in range(2000)]
    assert len({future.result(timeout=10) for future in futures}) == 2000
    publisher.stop()
    assert 4 <= server.request_counts()["Publish"] <= 8


def test_more_than_1000_messages_per_request_is_refused(server: PubSubServer, topic: str) -> None:
    client = GapicPublisherClient()
    messages = [PubsubMessage(data=b"x") for _ in range(1001)]
    with pytest.raises(exceptions.InvalidArgument):
        client.publish(topic=topic, messages=messages)
    assert client.publish(topic=topic, messages=messages[:1000]).message_ids


def test_request_over_10_mb_is_refused(server: PubSubServer, topic: str) -> None:
    client = GapicPublisherClient()
    chunk = b"x" * 1_000_000
    with pytest.raises(exceptions.InvalidArgument):
        client.publish(topic=topic, messages=[PubsubMessage(data=chunk) for _ in range(11)])


def test_publish_to_a_missing_topic_is_not_found(server: PubSubServer) -> None:
    client = GapicPublisherClient()
    with pytest.raises(exceptions.NotFound):
        client.publish(topic=unique("topics"), messages=[PubsubMessage(data=b"x")])


@pytest.mark.parametrize(
    "message",
    [
        PubsubMessage(),  # neither data nor attributes
        PubsubMessage(data=b"x", attributes={"googkey": "v"}),
        PubsubMessage(data=b"x", attributes={"k" * 257: "v"}),
        PubsubMessage(data=b"x", attributes={"k": "v" * 1025}),
        PubsubMessage(data=b"x", attributes={f"k{i}": "v" for i in range(101)}),
    ],
    ids=["empty", "goog-key", "long-key", "long-value", "101-attributes"],
)
def test_invalid_messages_are_refused(
    server: PubSubServer, topic: str, message: PubsubMessage
) -> None:
    client = GapicPublisherClient()
    with pytest.raises(exceptions.InvalidArgument):
        client.publish(topic=topic, messages=[message])


def test_attribute_limits_are_inclusive(server: PubSubServer, topic: str) -> None:
    client = GapicPublisherClient()
    attributes = {f"k{i:03d}": "v" * 1024 for i in range(99)}
    attributes["k" * 256] = "v"
    response = client.publish(topic=topic, messages=[PubsubMessage(attributes=attributes)])
    assert len(response.message_ids) == 1


def test_client_library_trace_attributes_are_accepted(
    server: PubSubServer,
    topic: str,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
) -> None:
    # The client libraries' OpenTelemetry context travels as googclient_* attributes.
    subscription = make_subscription()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    attributes = {"googclient_traceparent": parent, "googclient_tracestate": "k=v"}
    GapicPublisherClient().publish(
        topic=topic, messages=[PubsubMessage(data=b"x", attributes=attributes)]
    )
    [received] = pull_until(subscriber, subscription, 1)
    assert dict(received.message.attributes) == attributes


def test_attributes_alone_are_a_valid_message(
    server: PubSubServer,
    topic: str,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    GapicPublisherClient().publish(topic=topic, messages=[PubsubMessage(attributes={"a": "b"})])
    [received] = pull_until(subscriber, subscription, 1)
    assert received.message.data == b""
    assert received.message.attributes == {"a": "b"}


def test_every_subscription_gets_a_copy_but_only_of_later_messages(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    first = make_subscription()
    publish_all(publisher, topic, b"early")
    second = make_subscription()
    publish_all(publisher, topic, b"late")

    assert [m.message.data for m in pull_until(subscriber, first, 2)] == [b"early", b"late"]
    assert [m.message.data for m in pull_until(subscriber, second, 1)] == [b"late"]
    assert pull_now(subscriber, second) == []
