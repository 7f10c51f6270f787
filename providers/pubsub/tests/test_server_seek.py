"""Seek and snapshots, with acknowledged-message retention, through the official client.

The scenarios follow the replay samples of googleapis/python-pubsub (create a snapshot, seek a
subscription to it or to a time, retain acknowledged messages), re-expressed as tests.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest
from conftest import (
    PROJECT,
    SubscriptionFactory,
    publish_all,
    pull_now,
    pull_until,
    streaming,
    unique,
)
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.protobuf import timestamp_pb2

from cloudqueue_pubsub.testing import PubSubServer

SEVEN_DAYS = datetime.timedelta(days=7)
#: A seek target earlier than every publish time: seeking to it replays all that is retained.
BEFORE_ANY_MESSAGE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


def receive_and_ack(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, count: int
) -> list[Any]:
    received = pull_until(subscriber, subscription, count)
    assert len(received) == count
    subscriber.acknowledge(subscription=subscription, ack_ids=[r.ack_id for r in received])
    return received


def data_of(received: list[Any]) -> list[bytes]:
    return sorted(r.message.data for r in received)


def seek_to(subscriber: pubsub_v1.SubscriberClient, subscription: str, when: Any) -> None:
    subscriber.seek(request={"subscription": subscription, "time": when})


def retaining_topic(publisher: pubsub_v1.PublisherClient) -> str:
    """A fresh topic that keeps its messages an hour, for seeks to replay."""
    name = unique("topics")
    publisher.create_topic(request={"name": name, "message_retention_duration": {"seconds": 3600}})
    return name


def publish_time(received: Any) -> timestamp_pb2.Timestamp:
    return received.message.publish_time.timestamp_pb()  # type: ignore[no-any-return]


# --- seek to a time --------------------------------------------------------------------------


def test_seek_back_redelivers_retained_acked_messages_from_that_time(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(retain_acked_messages=True)
    publish_all(publisher, topic, b"first")
    [first] = receive_and_ack(subscriber, subscription, 1)
    publish_all(publisher, topic, b"second")
    [second] = receive_and_ack(subscriber, subscription, 1)
    assert server.broker.backlog(subscription) == 0

    seek_to(subscriber, subscription, publish_time(second))
    assert data_of(receive_and_ack(subscriber, subscription, 1)) == [b"second"]
    assert pull_now(subscriber, subscription) == []

    seek_to(subscriber, subscription, publish_time(first))
    assert data_of(receive_and_ack(subscriber, subscription, 2)) == [b"first", b"second"]


def test_without_retain_acked_messages_seek_back_only_redelivers_unacked_ones(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"a", b"b", b"c")
    leased = pull_until(subscriber, subscription, 3)
    by_data = {r.message.data: r for r in leased}
    subscriber.acknowledge(subscription=subscription, ack_ids=[by_data[b"b"].ack_id])

    seek_to(subscriber, subscription, publish_time(by_data[b"a"]))
    # a and c were leased and are delivered again at once; b was acknowledged and is gone.
    again = pull_until(subscriber, subscription, 2)
    assert data_of(again) == [b"a", b"c"]
    # The leases from before the seek no longer acknowledge anything.
    subscriber.acknowledge(subscription=subscription, ack_ids=[by_data[b"a"].ack_id])
    assert server.broker.backlog(subscription) == 2


def test_seek_forward_acknowledges_everything_published_before(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(retain_acked_messages=True)
    publish_all(publisher, topic, b"old-1", b"old-2")
    seek_to(subscriber, subscription, datetime.datetime.now(datetime.UTC) + SEVEN_DAYS)
    assert server.broker.backlog(subscription) == 0
    assert pull_now(subscriber, subscription) == []
    publish_all(publisher, topic, b"new")
    assert data_of(receive_and_ack(subscriber, subscription, 1)) == [b"new"]
    # Acknowledged by the seek but retained: seeking back brings them again.
    seek_to(subscriber, subscription, BEFORE_ANY_MESSAGE)
    assert data_of(receive_and_ack(subscriber, subscription, 3)) == [b"new", b"old-1", b"old-2"]


def test_seek_keeps_each_ordering_key_in_publish_order(
    ordered_publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(enable_message_ordering=True, retain_acked_messages=True)
    for n in range(5):
        ordered_publisher.publish(topic, f"k{n}".encode(), ordering_key="k").result(timeout=10)
    receive_and_ack(subscriber, subscription, 5)
    seek_to(subscriber, subscription, BEFORE_ANY_MESSAGE)
    again = pull_until(subscriber, subscription, 5)
    assert [r.message.data for r in again] == [f"k{n}".encode() for n in range(5)]


def test_topic_retention_replays_messages_published_before_the_subscription(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
) -> None:
    topic = retaining_topic(publisher)
    publish_all(publisher, topic, b"before the subscription")
    subscription = make_subscription(topic)
    assert pull_now(subscriber, subscription) == []
    seek_to(subscriber, subscription, BEFORE_ANY_MESSAGE)
    assert data_of(receive_and_ack(subscriber, subscription, 1)) == [b"before the subscription"]


def test_seek_applies_the_subscription_filter_to_topic_retention(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
) -> None:
    topic = retaining_topic(publisher)
    publish_all(publisher, topic, b"red", colour="red")
    publish_all(publisher, topic, b"blue", colour="blue")
    subscription = make_subscription(topic, filter='attributes.colour = "red"')
    seek_to(subscriber, subscription, BEFORE_ANY_MESSAGE)
    assert data_of(receive_and_ack(subscriber, subscription, 1)) == [b"red"]
    assert pull_now(subscriber, subscription) == []


def test_seek_needs_a_target_and_an_existing_subscription(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    with pytest.raises(exceptions.InvalidArgument, match="time or a snapshot"):
        subscriber.seek(request={"subscription": make_subscription()})
    with pytest.raises(exceptions.NotFound):
        seek_to(subscriber, unique("subscriptions"), datetime.datetime.now(datetime.UTC))


# --- snapshots -------------------------------------------------------------------------------


def test_seek_to_a_snapshot_restores_its_unacked_messages_and_later_ones(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription()
    publish_all(publisher, topic, b"acked before")
    receive_and_ack(subscriber, subscription, 1)
    publish_all(publisher, topic, b"pending-1", b"pending-2")
    snapshot = f"projects/{PROJECT}/snapshots/before-processing"
    subscriber.create_snapshot(request={"name": snapshot, "subscription": subscription})

    receive_and_ack(subscriber, subscription, 2)
    publish_all(publisher, topic, b"after")
    receive_and_ack(subscriber, subscription, 1)
    assert server.broker.backlog(subscription) == 0

    subscriber.seek(request={"subscription": subscription, "snapshot": snapshot})
    replayed = receive_and_ack(subscriber, subscription, 3)
    assert data_of(replayed) == [b"after", b"pending-1", b"pending-2"]
    assert pull_now(subscriber, subscription) == []


def test_a_snapshot_seeks_any_subscription_of_its_topic_only(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    source = make_subscription()
    other = make_subscription()
    publish_all(publisher, topic, b"m1", b"m2")
    receive_and_ack(subscriber, other, 2)
    snapshot = f"projects/{PROJECT}/snapshots/shared"
    subscriber.create_snapshot(request={"name": snapshot, "subscription": source})

    subscriber.seek(request={"subscription": other, "snapshot": snapshot})
    assert data_of(receive_and_ack(subscriber, other, 2)) == [b"m1", b"m2"]

    other_topic = unique("topics")
    publisher.create_topic(name=other_topic)
    elsewhere = make_subscription(other_topic)
    with pytest.raises(exceptions.InvalidArgument, match="of topic"):
        subscriber.seek(request={"subscription": elsewhere, "snapshot": snapshot})


def test_snapshot_lifecycle(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription()
    [message_id] = publish_all(publisher, topic, b"oldest unacked")
    [received] = pull_until(subscriber, subscription, 1)
    name = f"projects/{PROJECT}/snapshots/lifecycle"
    created = subscriber.create_snapshot(
        request={"name": name, "subscription": subscription, "labels": {"team": "a"}}
    )
    assert created.name == name
    assert created.topic == topic
    assert created.labels == {"team": "a"}
    # Seven days after the oldest unacknowledged message was published.
    assert created.expire_time == received.message.publish_time + SEVEN_DAYS

    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_snapshot(request={"name": name, "subscription": subscription})
    assert subscriber.get_snapshot(snapshot=name).labels == {"team": "a"}

    updated = subscriber.update_snapshot(
        request={
            "snapshot": {"name": name, "labels": {"team": "b"}},
            "update_mask": {"paths": ["labels"]},
        }
    )
    assert updated.labels == {"team": "b"}
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.update_snapshot(
            request={"snapshot": {"name": name}, "update_mask": {"paths": ["topic"]}}
        )

    subscriber.delete_snapshot(snapshot=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_snapshot(snapshot=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.seek(request={"subscription": subscription, "snapshot": name})
    with pytest.raises(exceptions.NotFound):
        subscriber.delete_snapshot(snapshot=name)
    assert message_id == received.message.message_id


def test_list_snapshots_pages_through_one_project(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    subscription = make_subscription()
    names = sorted(f"projects/{PROJECT}/snapshots/listed-{i}" for i in range(5))
    for name in names:
        subscriber.create_snapshot(request={"name": name, "subscription": subscription})
    pages = subscriber.list_snapshots(request={"project": f"projects/{PROJECT}", "page_size": 2})
    seen = [[snapshot.name for snapshot in page.snapshots] for page in pages.pages]
    assert [len(page) for page in seen] == [2, 2, 1]
    assert [name for page in seen for name in page] == names


def test_an_expired_snapshot_is_gone(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    name = f"projects/{PROJECT}/snapshots/short-lived"
    subscriber.create_snapshot(request={"name": name, "subscription": make_subscription()})
    subscriber.update_snapshot(
        request={
            "snapshot": {"name": name, "expire_time": datetime.datetime(2020, 1, 1)},
            "update_mask": {"paths": ["expire_time"]},
        }
    )
    with pytest.raises(exceptions.NotFound):
        subscriber.get_snapshot(snapshot=name)
    assert list(subscriber.list_snapshots(project=f"projects/{PROJECT}")) == []


@pytest.mark.parametrize(
    "name", ["snapshots/abc", "projects/p/snapshots/ab", "projects/p/subscriptions/abc"]
)
def test_invalid_snapshot_names_are_refused(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory, name: str
) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.create_snapshot(request={"name": name, "subscription": make_subscription()})


def test_snapshot_of_a_missing_subscription_is_not_found(
    subscriber: pubsub_v1.SubscriberClient,
) -> None:
    with pytest.raises(exceptions.NotFound):
        subscriber.create_snapshot(
            request={
                "name": f"projects/{PROJECT}/snapshots/orphan",
                "subscription": unique("subscriptions"),
            }
        )


def test_streaming_subscriber_receives_what_a_seek_replays(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription(retain_acked_messages=True)
    seen: list[bytes] = []
    changed = threading.Condition()

    def callback(message: Any) -> None:
        with changed:
            seen.append(message.data)
            changed.notify_all()
        message.ack()

    with streaming(subscriber, subscription, callback):
        publish_all(publisher, topic, b"once")
        with changed:
            assert changed.wait_for(lambda: seen == [b"once"], 10)
        seek_to(subscriber, subscription, BEFORE_ANY_MESSAGE)
        with changed:
            assert changed.wait_for(lambda: seen == [b"once", b"once"], 10)
