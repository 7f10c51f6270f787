"""Fixtures: a fresh local server per test and official clients pointed at it."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.cloud import pubsub_v1

from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "test-project"
_names = itertools.count(1)

#: Short, so that tests expecting an empty Pull do not wait long.
PULL_WAIT_SECONDS = 0.3


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=PULL_WAIT_SECONDS) as running:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", running.address)
        yield running


@pytest.fixture
def publisher(server: PubSubServer) -> Iterator[pubsub_v1.PublisherClient]:
    client = pubsub_v1.PublisherClient()
    yield client
    client.stop()
    client.transport.grpc_channel.close()


@pytest.fixture
def ordered_publisher(server: PubSubServer) -> Iterator[pubsub_v1.PublisherClient]:
    client = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    yield client
    client.stop()
    client.transport.grpc_channel.close()


@pytest.fixture
def subscriber(server: PubSubServer) -> Iterator[pubsub_v1.SubscriberClient]:
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


def unique(kind: str) -> str:
    return f"projects/{PROJECT}/{kind}/{kind[:-1]}-{next(_names)}"


@pytest.fixture
def topic(publisher: pubsub_v1.PublisherClient) -> str:
    name = unique("topics")
    publisher.create_topic(name=name)
    return name


@pytest.fixture
def dead_letter_topic(publisher: pubsub_v1.PublisherClient) -> str:
    """A second topic, for dead_letter_policy to forward to."""
    name = unique("topics")
    publisher.create_topic(name=name)
    return name


SubscriptionFactory = Callable[..., str]


@pytest.fixture
def make_subscription(subscriber: pubsub_v1.SubscriberClient, topic: str) -> SubscriptionFactory:
    def make(topic_name: str = topic, **fields: Any) -> str:
        name = unique("subscriptions")
        fields.setdefault("ack_deadline_seconds", 10)
        subscriber.create_subscription(request={"name": name, "topic": topic_name, **fields})
        return name

    return make


def pull_until(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    count: int,
    timeout: float = 5.0,
    max_messages: int = 1000,
) -> list[Any]:
    """Pull until ``count`` messages arrived or ``timeout`` passed; returns what arrived."""
    received: list[Any] = []
    give_up_at = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < give_up_at:
        response = subscriber.pull(
            subscription=subscription, max_messages=min(max_messages, count - len(received))
        )
        received.extend(response.received_messages)
    return received


def pull_now(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, max_messages: int = 100
) -> list[Any]:
    """One Pull with return_immediately: what is deliverable right now."""
    response = subscriber.pull(
        subscription=subscription, max_messages=max_messages, return_immediately=True
    )
    return list(response.received_messages)


def publish_all(
    publisher: pubsub_v1.PublisherClient, topic: str, *payloads: bytes, **attributes: str
) -> list[str]:
    futures = [publisher.publish(topic, payload, **attributes) for payload in payloads]
    return [future.result(timeout=10) for future in futures]


@contextlib.contextmanager
def streaming(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, callback: Callable[[Any], None]
) -> Iterator[Any]:
    """The client's streaming subscriber for the block; stopped, and its stop awaited, after."""
    future = subscriber.subscribe(subscription, callback)
    try:
        yield future
    finally:
        future.cancel()
        future.result(timeout=10)
