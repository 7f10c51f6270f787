"""CloudEvents on Pub/Sub per Google's binding (``ce-*`` attributes, ``content-type``),
interoperating with the official SDKs: a message google-cloud-pubsub publishes with the
binding's attributes reaches cloudqueue as the same event, and what cloudqueue publishes
reads back through google-cloud-pubsub and the ``cloudevents`` SDK's decoder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import cloudqueue
import pytest
from cloudevents.core.bindings import http
from cloudevents.core.formats.json import JSONFormat
from cloudqueue.cloudevents import CloudEvent, from_received, to_message
from cloudqueue.testing.contract import collect, unique_name
from cloudqueue.testing.contract.cloudevents import assert_same_event, sample_event
from google.cloud import pubsub_v1

from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "events-project"


@pytest.fixture(scope="module")
def server() -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=0.3) as running:
        yield running


@pytest.fixture
def topic(server: PubSubServer, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(topic id, cloudqueue URL with a subscription) of a fresh declared topic."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
    name = unique_name("ev")
    url = f"pubsub://{PROJECT}/{name}?subscription={name}-sub"
    cloudqueue.declare(url, lease=10)
    return name, url


@pytest.fixture
def publisher(topic: tuple[str, str]) -> Iterator[pubsub_v1.PublisherClient]:
    client = pubsub_v1.PublisherClient()
    yield client
    client.stop()


def _event(data: Any, **attributes: Any) -> CloudEvent:
    return sample_event(data, source="/shop", **attributes)


def _receive_one(url: str) -> cloudqueue.ReceivedMessage:
    with cloudqueue.open_consumer(url) as consumer:
        got = collect(consumer, 1, timeout=20)
    assert len(got) == 1
    return got[0]


def test_a_binary_event_google_cloud_pubsub_publishes_is_received_as_the_same_event(
    topic: tuple[str, str], publisher: pubsub_v1.PublisherClient
) -> None:
    name, url = topic
    event = _event({"order": 7, "total": 9.5}, datacontenttype="application/json")
    # Google's binding, written out: every context attribute as ce-<name>, the data's
    # media type as content-type, the data alone as the message data.
    publisher.publish(
        f"projects/{PROJECT}/topics/{name}", b'{"order": 7, "total": 9.5}',
        **{"ce-specversion": "1.0", "ce-type": "com.example.order.placed", "ce-source": "/shop",
           "ce-id": "order-7", "ce-time": "2026-03-01T12:30:15.25Z", "ce-subject": "orders/7",
           "ce-tenant": "acme", "content-type": "application/json"},
    ).result(timeout=30)
    assert_same_event(from_received(_receive_one(url)), event)


def test_a_structured_event_google_cloud_pubsub_publishes_is_received_as_the_same_event(
    topic: tuple[str, str], publisher: pubsub_v1.PublisherClient
) -> None:
    name, url = topic
    event = _event(b"\x00\x01 raw", datacontenttype="application/octet-stream")
    publisher.publish(
        f"projects/{PROJECT}/topics/{name}", JSONFormat().write(event),
        **{"content-type": "application/cloudevents+json"},
    ).result(timeout=30)
    assert_same_event(from_received(_receive_one(url)), event)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_event_cloudqueue_publishes_reads_back_through_the_sdks(
    topic: tuple[str, str], mode: str
) -> None:
    name, url = topic
    event = _event({"order": 7}, datacontenttype="application/json")
    with cloudqueue.open_producer(url) as producer:
        producer.send(to_message(event, url, mode))  # type: ignore[arg-type]
    subscriber = pubsub_v1.SubscriberClient()
    try:
        subscription = f"projects/{PROJECT}/subscriptions/{name}-sub"
        deadline = time.monotonic() + 20
        received: list[Any] = []
        while not received and time.monotonic() < deadline:
            received = list(subscriber.pull(subscription=subscription, max_messages=1,
                                            timeout=10).received_messages)
        assert len(received) == 1
        subscriber.acknowledge(subscription=subscription, ack_ids=[received[0].ack_id])
    finally:
        subscriber.close()
    message = received[0].message
    attributes = dict(message.attributes)
    if mode == "binary":
        assert attributes["ce-id"] == "order-7" and attributes["content-type"] == "application/json"
    else:
        assert attributes == {"content-type": "application/cloudevents+json"}
    # The binding's ce-* attributes and content-type are what the HTTP binding reads.
    assert_same_event(http.from_http(http.HTTPMessage(attributes, message.data), JSONFormat()), event)
