"""The Pub/Sub provider's operations hooks (stats, dead-letter facts, redrive source and
target) and redrive through cloudqueue.ops, against the local server with the official client."""

from __future__ import annotations

from collections.abc import Iterator

import cloudqueue
import pytest
from cloudqueue import ops
from cloudqueue._url import parse_url
from cloudqueue.driver import Message
from cloudqueue.testing.contract import unique_name
from cloudqueue.wire import DEAD_LETTER_REASON, REDRIVE_ATTRIBUTES
from google.pubsub_v1 import DeadLetterPolicy, SubscriberClient, Subscription

from cloudqueue_pubsub.provider import PubSubProvider
from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "ops-project"
DEAD_LETTER_AFTER = 5  # Pub/Sub's minimum


@pytest.fixture(scope="module")
def server() -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=0.3) as running:
        yield running


@pytest.fixture(autouse=True)
def emulator(server: PubSubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)


@pytest.fixture
def provider() -> Iterator[PubSubProvider]:
    made = PubSubProvider()
    yield made
    made.close()


@pytest.fixture
def subscriber(emulator: None) -> Iterator[SubscriberClient]:
    client = SubscriberClient()
    yield client
    client.transport.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def topic() -> str:
    return unique_name("t")


def url_of(topic: str, subscription: str | None = None) -> str:
    """Subscription ids are project-wide: each is prefixed with its topic's (unique) id."""
    url = f"pubsub://{PROJECT}/{topic}"
    return url if subscription is None else f"{url}?subscription={topic}-{subscription}"


def dead_lettered(url: str, bodies: list[bytes], *, explicit: int = 0) -> list[str]:
    """Send ``bodies`` to ``url``'s topic and dead-letter them all: the first ``explicit``
    by ``dead_letter("explicit")``, the rest by nacking until the service forwards them.
    Returns the ids they were sent with."""
    with cloudqueue.open_producer(url) as producer:
        ids = producer.send_batch(
            Message(body, attributes={"n": str(index)}) for index, body in enumerate(bodies)
        )
    pending = len(bodies)
    explicit_left = explicit
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        while pending:
            for message in consumer.receive(max_messages=10, wait=2.0):
                if explicit_left and message.delivery_attempt == 1:
                    explicit_left -= 1
                    message.dead_letter("explicit")
                    pending -= 1
                elif message.delivery_attempt == DEAD_LETTER_AFTER:
                    message.nack()  # the last attempt: the service forwards it
                    pending -= 1
                else:
                    message.nack()
    return ids


def receive_dead(url: str, count: int) -> list[cloudqueue.ReceivedMessage]:
    dead = cloudqueue.dead_letter_url(url)
    held: list[cloudqueue.ReceivedMessage] = []
    consumer = cloudqueue.open_consumer(dead, max_lease_extension=0)
    while len(held) < count:
        held.extend(consumer.receive(max_messages=count - len(held), wait=2.0))
    for message in held:
        message.nack()
    consumer.close()
    return held


# -- stats ------------------------------------------------------------------------------


def test_stats_know_nothing_without_cloud_monitoring(provider: PubSubProvider, topic: str) -> None:
    url = url_of(topic, "s1")
    cloudqueue.declare(url, dead_letter_after=DEAD_LETTER_AFTER)
    with cloudqueue.open_producer(url) as producer:
        producer.send("one")
    stats = provider.stats(parse_url(url))
    assert stats == ops.QueueStats(
        available=None, in_flight=None, delayed=None, dead_letters=None, oldest_age=None,
        exact=False,
    )
    assert ops.stats(url) == stats


def test_stats_need_a_subscription_that_exists(provider: PubSubProvider, topic: str) -> None:
    cloudqueue.declare(url_of(topic))
    with pytest.raises(cloudqueue.InvalidArgument, match=r"\?subscription=<name>"):
        provider.stats(parse_url(url_of(topic)))
    with pytest.raises(cloudqueue.NotFound):
        provider.stats(parse_url(url_of(topic, "missing")))


# -- dead-letter facts --------------------------------------------------------------------


def test_facts_of_forwarded_and_explicit_dead_letters(provider: PubSubProvider, topic: str) -> None:
    url = url_of(topic, "s1")
    cloudqueue.declare(url, dead_letter_after=DEAD_LETTER_AFTER)
    ids = dead_lettered(url, [b"explicit", b"forwarded"], explicit=1)
    dead = parse_url(cloudqueue.dead_letter_url(url))
    facts = {
        message.body: provider.dead_letter_facts(dead, message.delivery)
        for message in receive_dead(url, 2)
    }
    source = f"projects/{PROJECT}/subscriptions/{topic}-s1"
    forwarded, explicit = facts[b"forwarded"], facts[b"explicit"]
    assert forwarded.attributes == {"n": "1"}  # every CloudPubSubDeadLetterSource* removed
    assert (forwarded.reason, forwarded.delivery_count, forwarded.source) == (
        None, DEAD_LETTER_AFTER, source
    )
    assert explicit.attributes == {"n": "0"}
    assert (explicit.reason, explicit.delivery_count, explicit.source) == ("explicit", 1, source)
    assert explicit.original_id == ids[0]  # from the marker dead_letter() adds
    assert forwarded.original_id is None  # the service does not carry it


def test_an_explicit_dead_letter_carries_the_services_source_attributes(topic: str) -> None:
    url = url_of(topic, "s1")
    cloudqueue.declare(url, dead_letter_after=DEAD_LETTER_AFTER)
    dead_lettered(url, [b"x"], explicit=1)
    [message] = receive_dead(url, 1)
    assert message.attributes[DEAD_LETTER_REASON] == "explicit"
    assert message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "1"
    assert message.attributes["CloudPubSubDeadLetterSourceSubscription"] == f"{topic}-s1"
    assert message.attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] == PROJECT
    assert message.attributes["CloudPubSubDeadLetterSourceTopicPublishTime"].endswith("Z")


# -- redrive source ------------------------------------------------------------------------


def test_redrive_source_is_the_subscription_dead_lettering_into_the_topic(
    provider: PubSubProvider, topic: str
) -> None:
    url = url_of(topic, "s1")
    cloudqueue.declare(url, dead_letter_after=DEAD_LETTER_AFTER)
    cloudqueue.declare(url_of(topic, "s2"))  # a sibling without a dead-letter policy
    source = provider.redrive_source(parse_url(cloudqueue.dead_letter_url(url)))
    assert str(source) == url


def test_redrive_source_of_several_sibling_subscriptions_is_unsupported_naming_them(
    provider: PubSubProvider, topic: str
) -> None:
    # Siblings: a publish would reach both, so neither can be the target (nor passed as to=).
    for name in ("s1", "s2"):
        cloudqueue.declare(url_of(topic, name), dead_letter_after=DEAD_LETTER_AFTER)
    with pytest.raises(cloudqueue.Unsupported) as raised:
        provider.redrive_source(parse_url(cloudqueue.dead_letter_url(url_of(topic, "s1"))))
    assert f"{topic}-s1, {topic}-s2" in str(raised.value) and "to=" in str(raised.value)


def test_redrive_source_of_a_topic_no_subscription_dead_letters_into(
    provider: PubSubProvider, topic: str, subscriber: SubscriberClient
) -> None:
    cloudqueue.declare(url_of(topic, "plain"))
    with pytest.raises(cloudqueue.InvalidArgument, match="not a dead-letter topic"):
        provider.redrive_source(parse_url(url_of(topic, "plain")))
    dead = url_of(f"{topic}-dead-letter", "dl")
    cloudqueue.declare(dead)
    # No subscription of the source topic dead-letters at all.
    with pytest.raises(cloudqueue.Unsupported, match="dead_letter_after"):
        provider.redrive_source(parse_url(dead))
    # One does, into another topic.
    elsewhere = f"projects/{PROJECT}/topics/{topic}-elsewhere"
    cloudqueue.declare(f"pubsub://{PROJECT}/{topic}-elsewhere")
    subscriber.create_subscription(request=Subscription(
        name=f"projects/{PROJECT}/subscriptions/{topic}-other",
        topic=f"projects/{PROJECT}/topics/{topic}", ack_deadline_seconds=10,
        dead_letter_policy=DeadLetterPolicy(dead_letter_topic=elsewhere, max_delivery_attempts=5),
    ))
    with pytest.raises(cloudqueue.InvalidArgument, match="not a dead-letter topic of any"):
        provider.redrive_source(parse_url(dead))


# -- redrive target ------------------------------------------------------------------------


def test_redrive_target_of_a_topics_only_subscription_publishes_to_it(
    provider: PubSubProvider, topic: str
) -> None:
    url = url_of(topic, "only")
    cloudqueue.declare(url)
    driver = provider.open_redrive_target(parse_url(url))
    [sent] = driver.send_batch([Message(b"back")])
    assert isinstance(sent, str)
    with cloudqueue.open_consumer(url) as consumer:
        [message] = consumer.receive(max_messages=1, wait=5.0)
        assert (message.id, message.body) == (sent, b"back")
        message.ack()


def test_redrive_target_with_siblings_is_refused_naming_them_and_the_workaround(
    provider: PubSubProvider, topic: str, subscriber: SubscriberClient
) -> None:
    cloudqueue.declare(url_of(topic, "a-first"))
    # More subscriptions than one ListTopicSubscriptions page (100): the sibling that
    # matters is on the second page.
    for index in range(101):
        subscriber.create_subscription(request=Subscription(
            name=f"projects/{PROJECT}/subscriptions/{topic}-z{index:03d}",
            topic=f"projects/{PROJECT}/topics/{topic}", ack_deadline_seconds=10,
        ))
    with pytest.raises(cloudqueue.Unsupported) as raised:
        provider.open_redrive_target(parse_url(url_of(topic, "a-first")))
    message = str(raised.value)
    assert f"{topic}-z000" in message and f"{topic}-z100" in message
    assert "to=" in message and "NOT attributes:redrive_original_id" in message


def test_redrive_target_of_a_missing_subscription_is_not_found(
    provider: PubSubProvider, topic: str
) -> None:
    cloudqueue.declare(url_of(topic, "there"))
    with pytest.raises(cloudqueue.NotFound):
        provider.open_redrive_target(parse_url(url_of(topic, "elsewhere")))


# -- redrive through cloudqueue.ops -----------------------------------------------------------


def test_redrive_puts_dead_letters_back_byte_for_byte_with_provenance(
    topic: str, subscriber: SubscriberClient
) -> None:
    url = url_of(topic, "s1")
    cloudqueue.declare(url, dead_letter_after=DEAD_LETTER_AFTER)
    bodies = [b"\x00\xff binary", b"forwarded", b""]
    dead_lettered(url, bodies, explicit=1)
    dead = cloudqueue.dead_letter_url(url)

    report = ops.redrive(dead)

    assert (report.moved, report.skipped, report.failures) == (3, 0, [])
    assert report.target == url
    back: dict[bytes, dict[str, str]] = {}
    with cloudqueue.open_consumer(url) as consumer:
        while len(back) < 3:
            for message in consumer.receive(max_messages=10, wait=2.0):
                back[message.body] = message.attributes
                message.ack()
    assert sorted(back) == sorted(bodies)
    for body, attributes in back.items():
        index = str(bodies.index(body))
        assert {k: v for k, v in attributes.items() if k not in REDRIVE_ATTRIBUTES} == {"n": index}
        assert not any(name.startswith("CloudPubSubDeadLetterSource") for name in attributes)
        assert set(REDRIVE_ATTRIBUTES) - {"redrive_reason"} <= set(attributes)
    explicit = next(a for a in back.values() if a.get("redrive_reason") == "explicit")
    assert explicit["redrive_delivery_count"] == "1"
    assert sorted(a["redrive_delivery_count"] for a in back.values()) == ["1", "5", "5"]
    dead_path = f"projects/{PROJECT}/subscriptions/{topic}-dead-letter"
    assert not subscriber.pull(subscription=dead_path, max_messages=10,
                               return_immediately=True).received_messages


def test_redrive_into_a_subscription_with_siblings_moves_nothing(
    topic: str, subscriber: SubscriberClient
) -> None:
    url = url_of(topic, "s1")
    cloudqueue.declare(url, dead_letter_after=DEAD_LETTER_AFTER)
    dead_lettered(url, [b"stays"], explicit=1)
    cloudqueue.declare(url_of(topic, "sibling"))

    with pytest.raises(cloudqueue.Unsupported, match="sibling"):
        ops.redrive(cloudqueue.dead_letter_url(url))

    [message] = receive_dead(url, 1)  # still a dead letter; the sibling got nothing
    assert message.body == b"stays"
    sibling = f"projects/{PROJECT}/subscriptions/{topic}-sibling"
    assert not subscriber.pull(subscription=sibling, max_messages=10,
                               return_immediately=True).received_messages
