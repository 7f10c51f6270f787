"""Pub/Sub-specific behaviour beyond the contract suite: URLs, provisioning ranges, refusals
before sending, and opening without touching the network."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import cloudqueue
import pytest
from cloudqueue.testing.contract import collect, unique_name
from google.pubsub_v1 import SubscriberClient

from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "driver-project"


@pytest.fixture(scope="module")
def server() -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=0.3) as running:
        yield running


@pytest.fixture
def url(server: PubSubServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
    topic = unique_name("d")
    return f"pubsub://{PROJECT}/{topic}?subscription={topic}-sub"


@pytest.mark.parametrize(
    "bad",
    [
        "pubsub://only-project",
        "pubsub://p/a/b",
        "pubsub://Upper-Case/orders",
        "pubsub://demo/x",  # topic ids have at least 3 characters
        "pubsub://demo/google-topic",
        "pubsub://demo/orders?subscription=goog-sub",
    ],
)
def test_malformed_urls_are_refused_naming_the_form(bad: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument):
        cloudqueue.open_producer(bad)


def test_a_consumer_needs_a_subscription(url: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        cloudqueue.open_consumer(url.split("?")[0])
    assert "subscription=" in str(info.value)


def test_dead_letter_url_names_the_dead_letter_topic_and_subscription(url: str) -> None:
    topic = url.split("/")[3].split("?")[0]
    assert cloudqueue.dead_letter_url(url) == (
        f"pubsub://{PROJECT}/{topic}-dead-letter?subscription={topic}-dead-letter"
    )


@pytest.mark.parametrize("lease", [5.0, 601.0])
def test_lease_outside_the_ack_deadline_range_is_refused(url: str, lease: float) -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        cloudqueue.declare(url, lease=lease)
    assert "10..600" in str(info.value)


@pytest.mark.parametrize("attempts", [2, 4, 101])
def test_dead_letter_after_outside_pubsubs_range_is_refused(url: str, attempts: int) -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        cloudqueue.declare(url, dead_letter_after=attempts, lease=10)
    assert "5..100" in str(info.value)
    with pytest.raises(cloudqueue.NotFound):  # nothing was created
        cloudqueue.capabilities(url)


def test_deduplicated_declaration_is_unsupported(url: str) -> None:
    with pytest.raises(cloudqueue.Unsupported):
        cloudqueue.declare(url, deduplicated=True, lease=10)


def test_declare_sets_ack_deadline_ordering_and_dead_letter_policy(
    url: str, server: PubSubServer
) -> None:
    cloudqueue.declare(url, lease=42.5, ordered=True, dead_letter_after=7)
    subscription = url.replace("pubsub://", "").split("?subscription=")
    path = f"projects/{PROJECT}/subscriptions/{subscription[1]}"
    found = SubscriberClient().get_subscription(subscription=path)
    assert found.ack_deadline_seconds == 43
    assert found.enable_message_ordering
    assert found.dead_letter_policy.max_delivery_attempts == 7
    assert found.dead_letter_policy.dead_letter_topic.endswith("-dead-letter")
    capabilities = cloudqueue.capabilities(url)
    assert capabilities.ordering and capabilities.dead_letter and capabilities.delivery_attempt
    # Declaring again updates the policy; ordering cannot change on Pub/Sub.
    cloudqueue.declare(url, lease=20, ordered=True)
    assert not cloudqueue.capabilities(url).dead_letter
    with pytest.raises(cloudqueue.FailedPrecondition):
        cloudqueue.declare(url, lease=20, ordered=False)


def test_delay_and_long_nacks_are_refused_before_sending(url: str, server: PubSubServer) -> None:
    cloudqueue.declare(url, lease=10)
    server.reset_counts()
    with cloudqueue.open_producer(url) as producer:
        with pytest.raises(cloudqueue.Unsupported):
            producer.send(b"later", delay=5)
        with pytest.raises(cloudqueue.Unsupported):
            producer.send(b"once", deduplication_id="d-1")
        assert "Publish" not in server.request_counts()
        producer.send(b"now")
    with cloudqueue.open_consumer(url) as consumer:
        (message,) = collect(consumer, 1, timeout=10, ack=False)
        with pytest.raises(cloudqueue.InvalidArgument) as info:
            message.nack(delay=601)
        assert "600" in str(info.value)
        message.ack()


def test_an_empty_body_without_attributes_round_trips_without_the_marker(url: str) -> None:
    cloudqueue.declare(url, lease=10)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"")
    with cloudqueue.open_consumer(url) as consumer:
        (message,) = collect(consumer, 1, timeout=10)
    assert message.body == b"" and message.attributes == {}


def test_reserved_attribute_prefixes_are_refused(url: str) -> None:
    cloudqueue.declare(url, lease=10)
    with cloudqueue.open_producer(url) as producer:
        for name in ("googthing", "cloudqueue.empty"):
            with pytest.raises(cloudqueue.InvalidArgument) as info:
                producer.send(b"x", attributes={name: "1"})
            assert "reserved" in str(info.value)


def test_opening_a_producer_does_not_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:  # a port that accepts nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        producer = cloudqueue.open_producer(f"pubsub://{PROJECT}/{unique_name('n')}")
        assert time.monotonic() - started < 0.5
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
        producer.close()


def test_missing_topic_errors_carry_the_native_cause(url: str) -> None:
    from google.api_core import exceptions

    with cloudqueue.open_producer(url) as producer, pytest.raises(cloudqueue.NotFound) as info:
        producer.send(b"nowhere")
    assert info.value.as_(exceptions.NotFound) is not None


def test_close_ends_a_receive_waiting_in_another_thread_within_one_pull(url: str) -> None:
    cloudqueue.declare(url, lease=10)
    consumer = cloudqueue.open_consumer(url)
    returned: list[object] = []
    waiter = threading.Thread(target=lambda: returned.append(consumer.receive(max_messages=1, wait=15.0)))
    waiter.start()
    time.sleep(0.5)  # the receive is waiting in a Pull
    started = time.monotonic()
    consumer.close()
    waiter.join(timeout=10)
    assert returned == [[]]
    # One Pull (at most 2 s) finishes, instead of the rest of the 15 s wait.
    assert time.monotonic() - started < 4.0
