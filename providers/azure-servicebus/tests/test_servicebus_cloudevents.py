"""CloudEvents on Service Bus per the AMQP binding, interoperating with the official SDKs:
a message the ``cloudevents`` SDK lays out (``cloudEvents_*`` application properties, the
AMQP content type) and azure-servicebus sends reaches cloudqueue as the same event, and
what cloudqueue sends reads back through both SDKs. The ``content-type`` attribute travels
as the native content type."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import cloudqueue
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage
from cloudevents.core.bindings import amqp
from cloudevents.core.formats.json import JSONFormat
from cloudqueue.cloudevents import CloudEvent, from_received, to_message
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.contract.cloudevents import assert_same_event, sample_event

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
def queue(local_broker: ServiceBusBroker) -> tuple[str, str]:
    """(queue name, cloudqueue URL) of a fresh queue."""
    name = unique_name("events")
    connection = quote(local_broker.connection_string, safe="")
    url = f"azuresb://local/{name}?connection_string={connection}"
    cloudqueue.declare(url)
    return name, url


def _event(data: Any, **attributes: Any) -> CloudEvent:
    return sample_event(data, source="/shop", **attributes)


def _receive_one(url: str) -> cloudqueue.ReceivedMessage:
    with cloudqueue.open_consumer(url) as consumer:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = consumer.receive(1, 1.0)
            if got:
                got[0].ack()
                return got[0]
    raise AssertionError("no message arrived within 20 s")


def _native_receive_one(client: ServiceBusClient, name: str) -> ServiceBusReceivedMessage:
    with client.get_queue_receiver(name) as receiver:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in receiver.receive_messages(max_message_count=1, max_wait_time=1):
                receiver.complete_message(message)
                return message
    raise AssertionError("no message arrived within 20 s")


def _sdk_message(laid_out: amqp.AMQPMessage) -> ServiceBusMessage:
    properties = dict(laid_out.application_properties)
    if isinstance(properties.get("cloudEvents_time"), int):
        # The binding's AMQP timestamp: the cloudevents SDK writes it as integer
        # milliseconds, which azure-servicebus would encode as a 32-bit int (and refuse);
        # it writes a datetime as the AMQP timestamp type.
        millis = properties["cloudEvents_time"]
        properties["cloudEvents_time"] = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC)
    return ServiceBusMessage(
        laid_out.application_data,
        application_properties=properties,
        content_type=laid_out.properties.get("content-type"),
    )


def _as_amqp(received: ServiceBusReceivedMessage) -> amqp.AMQPMessage:
    """What azure-servicebus received, in the cloudevents SDK's AMQP shape."""
    def text(value: Any) -> Any:
        return value.decode() if isinstance(value, bytes) else value

    return amqp.AMQPMessage(
        properties={"content-type": received.content_type} if received.content_type else {},
        application_properties={text(k): text(v) for k, v in (received.application_properties or {}).items()},
        application_data=b"".join(received.body),
    )


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_event_the_sdks_send_is_received_as_the_same_event(
    queue: tuple[str, str], client: ServiceBusClient, mode: str
) -> None:
    name, url = queue
    event = _event({"order": 7, "total": 9.5}, datacontenttype="application/json")
    lay_out = amqp.to_binary if mode == "binary" else amqp.to_structured
    laid_out = lay_out(event, JSONFormat())
    if mode == "binary":  # the SDK writes time as an AMQP timestamp (an integer), not text
        assert isinstance(laid_out.application_properties["cloudEvents_time"], int)
    with client.get_queue_sender(name) as sender:
        sender.send_messages(_sdk_message(laid_out))
    assert_same_event(from_received(_receive_one(url)), event)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_event_cloudqueue_sends_reads_back_through_the_sdks(
    queue: tuple[str, str], client: ServiceBusClient, mode: str
) -> None:
    name, url = queue
    event = _event("plain text", datacontenttype="text/plain")
    with cloudqueue.open_producer(url) as producer:
        producer.send(to_message(event, url, mode))  # type: ignore[arg-type]
    received = _native_receive_one(client, name)
    # The AMQP binding: the content type in the message's own field, not a property.
    expected = "text/plain" if mode == "binary" else "application/cloudevents+json"
    assert received.content_type == expected
    assert b"content-type" not in (received.application_properties or {})
    assert_same_event(amqp.from_amqp(_as_amqp(received), JSONFormat()), event)


def test_the_content_type_attribute_is_the_native_content_type_after_a_delayed_nack(
    queue: tuple[str, str], client: ServiceBusClient
) -> None:
    name, url = queue
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"hello", attributes={"content-type": "text/plain", "k": "v"})
    with cloudqueue.open_consumer(url) as consumer:
        first: list[cloudqueue.ReceivedMessage] = []
        while not first:
            first = consumer.receive(1, 1.0)
        assert first[0].attributes == {"content-type": "text/plain", "k": "v"}
        first[0].nack(delay=1.0)  # a scheduled copy: it must keep the content type too
    received = _native_receive_one(client, name)
    assert received.content_type == "text/plain"
    assert {bytes(k): v for k, v in (received.application_properties or {}).items()
            if not bytes(k).startswith(b"cloudqueue.")} == {b"k": b"v"}
