"""The SQS provider's operations hooks (stats, dead-letter facts, redrive source) against
LocalStack, through boto3 and the portable API."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import cloudqueue
import pytest
from cloudqueue._url import parse_url
from cloudqueue.driver import Url
from cloudqueue.testing.contract import unique_name
from cloudqueue.wire import DEAD_LETTER_REASON
from conftest import sqs_client
from conftest_driver import aws_environment, endpoint_url

from cloudqueue_sqs.provider import SqsProvider

__all__ = ["aws_environment", "endpoint_url"]


@pytest.fixture
def provider() -> Iterator[SqsProvider]:
    made = SqsProvider()
    yield made
    made.close()


@pytest.fixture
def client(endpoint_url: str) -> Any:
    return sqs_client(endpoint_url)


class Queues:
    """Names queues for one test and deletes them afterwards."""

    def __init__(self, endpoint_url: str) -> None:
        self.query = urlencode({"region": "us-east-1", "endpoint_url": endpoint_url})
        self.made: list[str] = []

    def url(self, name: str | None = None) -> str:
        name = name or unique_name("cq-ops")
        url = f"sqs://{name}?{self.query}"
        self.made.append(url)
        return url


@pytest.fixture
def queues(endpoint_url: str, aws_environment: dict[str, str]) -> Iterator[Queues]:
    made = Queues(endpoint_url)
    yield made
    for url in made.made:
        for each in (url, cloudqueue.dead_letter_url(url)):
            with contextlib.suppress(cloudqueue.QueueError):
                cloudqueue.delete(each)


def parsed(url: str) -> Url:
    return parse_url(url)


def move_by_redrive_policy(client: Any, url: str, provider: SqsProvider, receives: int) -> str:
    """Receive the one message of ``url`` ``receives`` times (giving it back each time), so
    that the next receive makes SQS move it to the dead-letter queue. Returns its id."""
    queue_url = client.get_queue_url(QueueName=parsed(url).host)["QueueUrl"]
    message_id = ""
    for _ in range(receives):
        got: list[dict[str, Any]] = []
        while not got:
            got = client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        message_id = got[0]["MessageId"]
        client.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0
        )
    # This receive finds the message over maxReceiveCount: SQS moves it instead.
    assert client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages") is None
    return message_id


# -- stats -----------------------------------------------------------------------------


def test_stats_count_available_in_flight_delayed_and_dead_letters(
    provider: SqsProvider, queues: Queues
) -> None:
    url = queues.url()
    cloudqueue.declare(url, dead_letter_after=3)
    with cloudqueue.open_producer(url) as producer:
        for index in range(5):
            producer.send(f"ready {index}")
        producer.send("later", delay=600)
    with cloudqueue.open_producer(cloudqueue.dead_letter_url(url)) as producer:
        producer.send("dead 1")
        producer.send("dead 2")

    with cloudqueue.open_consumer(url, max_in_flight=2, max_lease_extension=0) as consumer:
        held = []
        while len(held) < 2:
            held.extend(consumer.receive(max_messages=2 - len(held), wait=2.0))
        stats = provider.stats(parsed(url))
        for message in held:
            message.ack()

    assert stats.available == 3
    assert stats.in_flight == 2
    assert stats.delayed == 1
    assert stats.dead_letters == 2
    assert stats.oldest_age is None  # a CloudWatch metric only
    assert stats.exact is False
    assert (stats.total_sent, stats.total_received) == (None, None)


def test_stats_count_dead_letters_being_looked_at(provider: SqsProvider, queues: Queues) -> None:
    url = queues.url()
    cloudqueue.declare(url, dead_letter_after=3)
    dead = cloudqueue.dead_letter_url(url)
    with cloudqueue.open_producer(dead) as producer:
        producer.send("dead")
    with cloudqueue.open_consumer(dead, max_lease_extension=0) as consumer:
        held = consumer.receive(max_messages=1, wait=5.0)
        assert len(held) == 1
        # Held by a redrive or a peek, it is still a dead letter.
        assert provider.stats(parsed(url)).dead_letters == 1
        held[0].nack()


def test_stats_of_a_queue_without_redrive_policy_know_no_dead_letters(
    provider: SqsProvider, queues: Queues
) -> None:
    url = queues.url()
    cloudqueue.declare(url)
    stats = provider.stats(parsed(url))
    assert (stats.available, stats.in_flight, stats.delayed) == (0, 0, 0)
    assert stats.dead_letters is None


def test_stats_of_a_missing_queue_raise_not_found(provider: SqsProvider, queues: Queues) -> None:
    with pytest.raises(cloudqueue.NotFound):
        provider.stats(parsed(queues.url()))


# -- dead-letter facts -------------------------------------------------------------------


def test_facts_of_a_message_moved_by_the_redrive_policy(
    provider: SqsProvider, queues: Queues, client: Any
) -> None:
    url = queues.url()
    cloudqueue.declare(url, dead_letter_after=2)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"\x00binary", attributes={"kind": "order", "n": "7"})
    original = move_by_redrive_policy(client, url, provider, receives=2)
    dead = cloudqueue.dead_letter_url(url)

    facts = []
    for _ in range(2):  # a second look (a peek, an interrupted redrive) changes nothing
        with cloudqueue.open_consumer(dead, max_lease_extension=0) as consumer:
            [message] = consumer.receive(max_messages=1, wait=5.0)
            assert message.id == original  # SQS moves the message itself
            assert message.body == b"\x00binary"
            facts.append(provider.dead_letter_facts(parsed(dead), message.delivery))
            message.nack()
    for fact in facts:
        assert fact.attributes == {"kind": "order", "n": "7"}
        assert fact.reason is None
        assert fact.delivery_count == 2
        assert fact.original_id is None  # the same id as the dead letter's
        assert fact.source is not None and fact.source.endswith(":" + parsed(url).host)


def test_facts_of_a_copy_sent_by_dead_letter_carry_the_original_id_and_count(
    provider: SqsProvider, queues: Queues
) -> None:
    url = queues.url()
    cloudqueue.declare(url, dead_letter_after=5)
    with cloudqueue.open_producer(url) as producer:
        sent = producer.send("poison", attributes={"kind": "order"})
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        [first] = consumer.receive(max_messages=1, wait=5.0)
        first.nack()
        [second] = consumer.receive(max_messages=1, wait=5.0)
        second.dead_letter("bad input")

    dead = cloudqueue.dead_letter_url(url)
    with cloudqueue.open_consumer(dead, max_lease_extension=0) as consumer:
        [message] = consumer.receive(max_messages=1, wait=5.0)
        # Markers never reach user code; the reason is a user-visible attribute.
        assert message.attributes == {"kind": "order", DEAD_LETTER_REASON: "bad input"}
        assert message.id != sent
        facts = provider.dead_letter_facts(parsed(dead), message.delivery)
        message.ack()
    assert facts.attributes == {"kind": "order"}
    assert facts.reason == "bad input"
    assert facts.original_id == sent
    assert facts.delivery_count == 2
    assert facts.source is None


def test_a_full_copy_keeps_the_reason_and_leaves_out_the_markers(
    provider: SqsProvider, queues: Queues
) -> None:
    url = queues.url()
    cloudqueue.declare(url, dead_letter_after=5)
    attributes = {f"a{index}": str(index) for index in range(8)}  # every user slot
    with cloudqueue.open_producer(url) as producer:
        # A body SQS cannot carry as text: the encoding marker takes the ninth slot.
        producer.send(b"\xff\x00", attributes=attributes)
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        [message] = consumer.receive(max_messages=1, wait=5.0)
        message.dead_letter("full")

    dead = cloudqueue.dead_letter_url(url)
    with cloudqueue.open_consumer(dead, max_lease_extension=0) as consumer:
        [message] = consumer.receive(max_messages=1, wait=5.0)
        facts = provider.dead_letter_facts(parsed(dead), message.delivery)
        assert message.body == b"\xff\x00"
        message.ack()
    assert facts.attributes == attributes
    assert facts.reason == "full"
    assert (facts.original_id, facts.delivery_count) == (None, None)


# -- redrive source ----------------------------------------------------------------------


def test_redrive_source_is_the_one_queue_whose_policy_names_the_dead_letter_queue(
    provider: SqsProvider, queues: Queues
) -> None:
    url = queues.url()
    cloudqueue.declare(url, dead_letter_after=3)
    dead = parsed(cloudqueue.dead_letter_url(url))
    source = provider.redrive_source(dead)
    assert source.unsafe_str() == parsed(url).unsafe_str()


def test_redrive_source_of_a_plain_queue_says_it_is_no_dead_letter_queue(
    provider: SqsProvider, queues: Queues
) -> None:
    url = queues.url()
    cloudqueue.declare(url)
    with pytest.raises(cloudqueue.InvalidArgument, match="not a dead-letter queue of any queue"):
        provider.redrive_source(parsed(url))


def test_redrive_source_with_several_sources_lists_them_and_asks_for_to(
    provider: SqsProvider, queues: Queues, client: Any
) -> None:
    first, second = queues.url(), queues.url()
    cloudqueue.declare(first, dead_letter_after=3)
    cloudqueue.declare(second)
    dead = parsed(cloudqueue.dead_letter_url(first))
    dead_arn = client.get_queue_attributes(
        QueueUrl=client.get_queue_url(QueueName=dead.host)["QueueUrl"],
        AttributeNames=["QueueArn"],
    )["Attributes"]["QueueArn"]
    client.set_queue_attributes(
        QueueUrl=client.get_queue_url(QueueName=parsed(second).host)["QueueUrl"],
        Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dead_arn, "maxReceiveCount": "3"}
        )},
    )
    with pytest.raises(cloudqueue.InvalidArgument) as raised:
        provider.redrive_source(dead)
    message = str(raised.value)
    assert parsed(first).host in message and parsed(second).host in message
    assert "to=" in message
