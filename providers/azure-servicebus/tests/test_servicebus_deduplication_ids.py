"""Received messages report the user's deduplication id on Service Bus (through the
official SDK against the local broker): not the MessageId the driver made up, not a
MessageId another client chose, and the same after ``nack(delay)`` and dead-lettering."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import quote

import cloudqueue
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from cloudqueue.testing.contract import unique_name

from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker


@pytest.fixture(scope="module")
def local_broker(broker: ServiceBusBroker) -> Iterator[ServiceBusBroker]:
    os.environ[CA_FILE_ENV] = broker.certificate_path
    yield broker
    os.environ.pop(CA_FILE_ENV, None)
    servicebus_provider._PROVIDER.close()


@pytest.fixture
def queue_name() -> str:
    return unique_name("dedup")


@pytest.fixture
def queue_url(local_broker: ServiceBusBroker, queue_name: str) -> str:
    connection = quote(local_broker.connection_string, safe="")
    url = f"azuresb://local/{queue_name}?connection_string={connection}"
    cloudqueue.declare(url, deduplicated=True, dead_letter_after=5)
    return url


def receive(url: str, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(url) as consumer:
        for _ in range(20):
            if len(got) >= count:
                break
            got.extend(consumer.receive(count - len(got), 1.0))
        for message in got:
            message.ack()
    return got


def test_only_the_users_deduplication_id_is_reported(
    queue_url: str, queue_name: str, client: ServiceBusClient
) -> None:
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send("given", deduplication_id="order-7", attributes={"k": "v"})
        producer.send("without")  # its MessageId is made up
    # Another client's MessageId is an id, not a deduplication id it gave cloudqueue.
    with client.get_queue_sender(queue_name) as sender:
        sender.send_messages(ServiceBusMessage("foreign", message_id="chosen-by-sdk"))
    got = {m.text(): (m.deduplication_id, m.attributes) for m in receive(queue_url, 3)}
    assert got == {
        "given": ("order-7", {"k": "v"}),  # the marker property is not an attribute
        "without": (None, {}),
        "foreign": (None, {}),
    }


def test_the_id_survives_a_nack_with_delay_and_dead_lettering(queue_url: str) -> None:
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send("retried", deduplication_id="order-8")
    with cloudqueue.open_consumer(queue_url) as consumer:
        (first,) = consumer.receive(1, 5.0)
        first.nack(delay=0.5)  # a scheduled copy with a MessageId of its own
        second: list[cloudqueue.ReceivedMessage] = []
        while not second:
            second = consumer.receive(1, 5.0)
        assert (second[0].delivery_attempt, second[0].deduplication_id) == (2, "order-8")
        second[0].dead_letter("unparseable")
    (dead,) = receive(cloudqueue.dead_letter_url(queue_url), 1)
    assert (dead.text(), dead.deduplication_id) == ("retried", "order-8")
