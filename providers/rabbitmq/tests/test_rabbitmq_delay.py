"""Delays through wait queues, beyond the contract suite: the level a delay waits, the
delivery attempt carried across ``nack(delay)``'s copy, ``dead_letter_after`` enforced for
copies, a delayed send to a missing queue or to a topic, and ``delete`` taking the wait
queues with it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import cloudqueue
import pytest
from cloudqueue import ops
from cloudqueue.testing.contract import collect, quiet_for
from cloudqueue.wire import DEAD_LETTER_REASON

from cloudqueue_rabbitmq._delay import LEVELS, MAX_DELAY, level_for
from cloudqueue_rabbitmq.testing import RabbitMqServer


@contextlib.contextmanager
def _declared(url: str, **settings: int) -> Iterator[None]:
    """The queue of ``url`` declared for the block, deleted after it (wait queues too)."""
    cloudqueue.declare(url, **settings)
    try:
        yield
    finally:
        cloudqueue.delete(url)


@pytest.mark.parametrize(
    ("delay", "level"),
    [(0.001, 1), (0.3, 1), (1.0, 1), (1.5, 2), (2.0, 2), (2.0001, 4), (5.0, 8),
     (600.0, 1024), (MAX_DELAY, 65536)],
)
def test_a_delay_waits_the_next_level_up_never_less(delay: float, level: int) -> None:
    assert level_for(delay) == level >= delay
    assert level in LEVELS


def test_delays_beyond_the_top_level_are_refused_naming_the_limit(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}"
    with _declared(url):
        with cloudqueue.open_producer(url) as producer, pytest.raises(
            cloudqueue.InvalidArgument, match="exceeds 65536s"
        ):
            producer.send(b"too late", delay=MAX_DELAY + 1)


def test_nack_with_delay_carries_the_delivery_attempt_and_the_attributes(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}&lease=5"
    with _declared(url):
        with cloudqueue.open_producer(url) as producer:
            sent_id = producer.send(b"retry me", attributes={"k": "v"})
        with cloudqueue.open_consumer(url) as consumer:
            attempts = []
            for _ in range(3):
                (message,) = collect(consumer, 1, timeout=30, ack=False)
                attempts.append(message.delivery_attempt)
                assert message.id == sent_id and message.body == b"retry me"
                assert message.attributes == {"k": "v"}  # the carried count stays hidden
                message.nack(delay=1.0)
            assert attempts == [1, 2, 3]
            (last,) = collect(consumer, 1, timeout=30, ack=False)
            assert last.delivery_attempt == 4
            last.nack()  # an immediate nack of a copy: the broker's count adds on
            (again,) = collect(consumer, 1, timeout=30, ack=True)
            assert again.delivery_attempt == 5


def _dead_letters(url: str, count: int) -> list[cloudqueue.ReceivedMessage]:
    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url)) as dead:
        return collect(dead, count, timeout=30)


def test_a_delayed_nack_at_dead_letter_after_dead_letters_the_copy(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}&lease=5"
    with _declared(url, dead_letter_after=2):
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"poison", attributes={"k": "v"})
        with cloudqueue.open_consumer(url) as consumer:
            (first,) = collect(consumer, 1, timeout=30, ack=False)
            first.nack(delay=1.0)
            (second,) = collect(consumer, 1, timeout=30, ack=False)
            assert second.delivery_attempt == 2
            second.nack(delay=1.0)  # the 2nd failed delivery: dead-lettered, not delayed
            assert quiet_for(consumer, 2.5) == []
        (letter,) = _dead_letters(url, 1)
        assert letter.body == b"poison" and letter.attributes.get("k") == "v"
        assert letter.attributes.get(DEAD_LETTER_REASON) == "delivery_limit"


def test_an_immediate_nack_of_a_copy_at_the_limit_dead_letters_it(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}&lease=5"
    with _declared(url, dead_letter_after=3):
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"poison")
        with cloudqueue.open_consumer(url) as consumer:
            (first,) = collect(consumer, 1, timeout=30, ack=False)
            first.nack(delay=1.0)
            for attempt in (2, 3):
                (copy,) = collect(consumer, 1, timeout=30, ack=False)
                assert copy.delivery_attempt == attempt
                copy.nack()  # the broker counts this copy's returns from 0: the driver decides
            assert quiet_for(consumer, 1.5) == []
        (letter,) = _dead_letters(url, 1)
        assert letter.attributes.get(DEAD_LETTER_REASON) == "delivery_limit"


def test_a_copy_given_back_at_the_limit_is_not_handed_out_again(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}&lease=5"
    with _declared(url, dead_letter_after=2):
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"slow")
        with cloudqueue.open_consumer(url) as consumer:
            (first,) = collect(consumer, 1, timeout=30, ack=False)
            first.nack(delay=1.0)
            (copy,) = collect(consumer, 1, timeout=30, ack=False)
            assert copy.delivery_attempt == 2
        # Closed unsettled (as a crashed consumer would be): the broker gives it back,
        # and its next delivery would pass dead_letter_after=2.
        with cloudqueue.open_consumer(url) as consumer:
            assert quiet_for(consumer, 2.0) == []
        (letter,) = _dead_letters(url, 1)
        assert letter.body == b"slow"
        assert letter.attributes.get(DEAD_LETTER_REASON) == "delivery_limit"


def test_a_delayed_send_to_a_missing_queue_is_not_found(rabbitmq_url: str) -> None:
    url = f"{rabbitmq_url}?queue=cq-missing-{time.monotonic_ns()}"
    with cloudqueue.open_producer(url) as producer, pytest.raises(cloudqueue.NotFound):
        producer.send(b"nowhere", delay=1.0)


def test_a_delayed_send_to_a_topic_reaches_every_subscription(
    rabbitmq_url: str, queue_name: str
) -> None:
    topic = f"{rabbitmq_url}?topic={queue_name}"
    subscriptions = [f"{topic}&subscription=s{index}" for index in range(2)]
    for url in subscriptions:
        cloudqueue.declare(url)
    try:
        sent_at = time.monotonic()
        with cloudqueue.open_producer(topic) as producer:
            producer.send(b"later", delay=1.0)
        for url in subscriptions:
            with cloudqueue.open_consumer(url) as consumer:
                (message,) = collect(consumer, 1, timeout=30)
                assert message.body == b"later" and message.delivery_attempt == 1
        assert time.monotonic() - sent_at >= 1.0
    finally:
        for url in (*subscriptions, topic):
            cloudqueue.delete(url)


def test_delete_removes_the_wait_queues_and_the_limit_record(
    rabbitmq_server: RabbitMqServer, queue_name: str
) -> None:
    url = f"{rabbitmq_server.url}?queue={queue_name}"
    cloudqueue.declare(url, dead_letter_after=3)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"a", delay=2.0)
        producer.send(b"b", delay=5.0)

    def ours() -> set[str]:
        listed = rabbitmq_server.ctl("list_queues", "name", "--quiet", "--no-table-headers")
        return {line.strip() for line in listed.splitlines() if queue_name in line}

    assert ours() == {
        queue_name, f"{queue_name}.dead-letter", f"cloudqueue.limit.{queue_name}",
        f"cloudqueue.wait.q.2.{queue_name}", f"cloudqueue.wait.q.8.{queue_name}",
    }
    cloudqueue.delete(url)
    assert ours() == set()


def test_a_delayed_message_dead_lettered_by_the_broker_names_its_queue_not_the_wait_queue(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}&lease=5"
    with _declared(url, dead_letter_after=1):
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"late and bad", delay=1.0)
        with cloudqueue.open_consumer(url) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            message.nack()  # an original (not a copy) at the limit: the broker moves it
        (letter,) = ops.dead_letters(url, max_messages=1)
        assert letter.dead_letter is not None
        assert letter.dead_letter.reason == "delivery_limit"
        assert letter.dead_letter.source == queue_name
