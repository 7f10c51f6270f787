"""Received messages report the user's deduplication id on SQS FIFO queues (LocalStack,
through the portable API): never one cloudqueue made up, content-based deduplication
still drops repeats, and a user's id in the made-up ids' namespace is refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlencode

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from conftest_driver import aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]


@pytest.fixture
def fifo_url(endpoint_url: str, aws_environment: dict[str, str]) -> Iterator[str]:
    query = urlencode({"region": "us-east-1", "endpoint_url": endpoint_url})
    url = f"sqs://{unique_name('cq-dedup')}.fifo?{query}"
    yield url
    for each in (url, cloudqueue.dead_letter_url(url)):
        with contextlib.suppress(cloudqueue.QueueError):
            cloudqueue.delete(each)


def receive(url: str, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(url) as consumer:
        for _ in range(20):
            if len(got) >= count:
                break
            got.extend(consumer.receive(count - len(got), 2.0))
        for message in got:
            message.ack()
        got.extend(consumer.receive(10, 1.0))  # nothing more: a repeat was dropped
    return got


def test_content_based_repeats_are_still_dropped_and_report_no_id(fifo_url: str) -> None:
    cloudqueue.declare(fifo_url, deduplicated=True)
    with cloudqueue.open_producer(fifo_url) as producer:
        producer.send("same body")
        producer.send("same body")  # content-based: a repeat within 5 minutes
        producer.send("given", deduplication_id="order-7")
    got = receive(fifo_url, 2)
    assert sorted((m.text(), m.deduplication_id) for m in got) == [
        ("given", "order-7"), ("same body", None),
    ]


def test_a_fifo_queue_without_content_based_deduplication_reports_none_for_made_up_ids(
    fifo_url: str,
) -> None:
    cloudqueue.declare(fifo_url, dead_letter_after=5)
    with cloudqueue.open_producer(fifo_url) as producer:
        producer.send("same body")
        producer.send("same body")  # each gets its own made-up id: both kept
    got = receive(fifo_url, 2)
    assert [(m.text(), m.deduplication_id) for m in got] == [("same body", None)] * 2


def test_a_dead_letter_copy_reports_no_deduplication_id(fifo_url: str) -> None:
    cloudqueue.declare(fifo_url, dead_letter_after=5)
    with cloudqueue.open_producer(fifo_url) as producer:
        producer.send("poison", deduplication_id="order-8")
    with cloudqueue.open_consumer(fifo_url) as consumer:
        (message,) = consumer.receive(1, 5.0)
        assert message.deduplication_id == "order-8"
        message.dead_letter("unparseable")
    # The copy's id is made up (the source message id), so that a retried
    # dead-lettering is dropped: SQS cannot tell the user's id any more.
    (dead,) = receive(cloudqueue.dead_letter_url(fifo_url), 1)
    assert (dead.text(), dead.deduplication_id) == ("poison", None)


def test_a_deduplication_id_in_the_made_up_namespace_is_refused(fifo_url: str) -> None:
    cloudqueue.declare(fifo_url)
    with cloudqueue.open_producer(fifo_url) as producer:
        with pytest.raises(cloudqueue.InvalidArgument, match=r"starts with 'cloudqueue\.'"):
            producer.send("x", deduplication_id="cloudqueue.body-1")
        producer.send("fine", deduplication_id="order-9")
    assert [(m.text(), m.deduplication_id) for m in receive(fifo_url, 1)] == [("fine", "order-9")]


def test_a_message_without_ordering_key_reports_none_not_its_made_up_group(fifo_url: str) -> None:
    cloudqueue.declare(fifo_url)
    with cloudqueue.open_producer(fifo_url) as producer:
        producer.send("keyless")
        producer.send("keyed", ordering_key="customer-7")
        with pytest.raises(cloudqueue.InvalidArgument, match=r"ordering_key .* starts with 'cloudqueue\.'"):
            producer.send_batch([cloudqueue.Message("refused", ordering_key="cloudqueue.x"),
                                 cloudqueue.Message("not sent either")])
    got = sorted((m.text(), m.ordering_key) for m in receive(fifo_url, 2))
    assert got == [("keyed", "customer-7"), ("keyless", None)]
