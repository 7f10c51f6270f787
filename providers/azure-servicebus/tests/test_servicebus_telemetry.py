"""Tracing on Service Bus: cloudqueue and azure-servicebus's own tracing (azure-core's
OpenTelemetry plugin) continue each other's traces through the application properties
``Diagnostic-Id`` / ``traceparent`` / ``tracestate``, and one message sent by cloudqueue and
processed by the worker makes one trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import cloudqueue
import pytest
from azure.core.settings import settings
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.telemetry import Captured, capture, traceparent_of
from cloudqueue.testing.worker import aserve_until as serve_until
from cloudqueue.worker import App
from opentelemetry import trace
from test_contract_servicebus import ServiceBusHarness

from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker


@pytest.fixture
def spans() -> Iterator[Captured]:
    """The process's shared SDK providers' spans and metrics, spans cleared around the test."""
    captured = capture()
    captured.clear()
    yield captured
    captured.clear()


@pytest.fixture
def sdk_tracing() -> Iterator[None]:
    """azure-core's OpenTelemetry tracing, on for this test only (it is process-wide)."""
    settings.tracing_implementation = "opentelemetry"
    try:
        yield
    finally:
        settings.tracing_implementation = None


@pytest.fixture
def queue_url(broker: ServiceBusBroker, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(CA_FILE_ENV, broker.certificate_path)  # declare() speaks HTTPS
    url = ServiceBusHarness(broker).url(unique_name("traced"))
    cloudqueue.declare(url, dead_letter_after=5, lease=5.0)
    return url


def entity_of(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 1)[1]


def receive_one(url: str) -> cloudqueue.ReceivedMessage:
    with cloudqueue.open_consumer(url) as consumer:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in consumer.receive(1, wait=1.0):
                message.ack()
                return message
    raise AssertionError("nothing received within 20 s")


def sdk_receive_one(client: ServiceBusClient, entity: str) -> Any:
    with client.get_queue_receiver(entity) as receiver:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in receiver.receive_messages(max_message_count=1, max_wait_time=1):
                receiver.complete_message(message)
                return message
    raise AssertionError("nothing received within 20 s")


def test_a_message_the_sdk_traced_is_continued_by_cloudqueue(
    client: ServiceBusClient, queue_url: str, spans: Captured, sdk_tracing: None
) -> None:
    entity = entity_of(queue_url)
    with client.get_queue_sender(entity) as sender:
        sender.send_messages(ServiceBusMessage(b"order", application_properties={"kind": "new"}))
    created = spans.only("ServiceBus.message")  # the SDK's per-message PRODUCER span

    message = receive_one(queue_url)

    assert message.attributes == {"kind": "new"}  # Diagnostic-Id, traceparent stripped
    assert message.trace_context == {"traceparent": traceparent_of(created)}
    for name in (f"receive {entity}", f"ack {entity}"):
        span = spans.only(name)
        assert [link.context.span_id for link in span.links] == [created.context.span_id]
        assert span.links[0].context.trace_id == created.context.trace_id


def test_a_message_cloudqueue_traced_is_continued_by_the_sdk(
    client: ServiceBusClient, queue_url: str, spans: Captured, sdk_tracing: None
) -> None:
    entity = entity_of(queue_url)
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send(b"order", attributes={"kind": "new"})
    sent = spans.only(f"send {entity}")

    received = sdk_receive_one(client, entity)

    # The SDK's own tracing also ran under cloudqueue's send: ours is the one kept, each
    # property once, as the SDK writes it (Diagnostic-Id and traceparent alike).
    properties = received.application_properties
    assert properties[b"traceparent"] == traceparent_of(sent).encode()
    assert properties[b"Diagnostic-Id"] == traceparent_of(sent).encode()
    assert properties[b"kind"] == b"new"
    receive = spans.only("ServiceBus.receive")
    assert [link.context.span_id for link in receive.links] == [sent.context.span_id]
    assert receive.links[0].context.trace_id == sent.context.trace_id


def test_cloudqueue_spans_describe_the_namespace_and_entity(
    broker: ServiceBusBroker, queue_url: str, spans: Captured
) -> None:
    entity = entity_of(queue_url)
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send(b"order")
    receive_one(queue_url)

    for name in (f"send {entity}", f"receive {entity}", f"ack {entity}"):
        attributes = spans.only(name).attributes or {}
        assert attributes["messaging.system"] == "servicebus"
        assert attributes["messaging.destination.name"] == entity
        assert attributes["server.address"] == broker.host
        assert attributes["server.port"] == broker.port
    for metric in ("messaging.client.sent.messages", "messaging.client.consumed.messages"):
        [point] = spans.points(metric, messaging__destination__name=entity)
        assert point.value == 1
        assert point.attributes["messaging.system"] == "servicebus"


def test_a_user_property_with_a_carrier_name_is_refused(queue_url: str) -> None:
    with cloudqueue.open_producer(queue_url) as producer:
        with pytest.raises(cloudqueue.InvalidArgument, match="Diagnostic-Id"):
            producer.send(b"order", attributes={"Diagnostic-Id": "mine"})


def test_one_trace_from_send_to_settle_through_the_worker(
    queue_url: str, spans: Captured
) -> None:
    entity = entity_of(queue_url)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("place order") as placing:
        with cloudqueue.open_producer(queue_url) as producer:
            producer.send(b"order", attributes={"kind": "new"})
    seen: list[dict[str, str]] = []
    app = App(poll_wait=0.5)

    @app.handler(queue_url, concurrency=1)
    def on_order(message: cloudqueue.ReceivedMessage) -> None:
        seen.append(dict(message.attributes))

    asyncio.run(serve_until(app, lambda: app.counters()["processed"] >= 1))

    assert seen == [{"kind": "new"}]
    trace_id = placing.get_span_context().trace_id
    send = spans.only(f"send {entity}")
    process = spans.only(f"process {entity}")
    receive = spans.only(f"receive {entity}")
    settle = spans.only(f"ack {entity}")
    assert {send.context.trace_id, process.context.trace_id} == {trace_id}
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.kind == trace.SpanKind.CONSUMER
    for span in (receive, settle):
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
    assert (settle.attributes or {})["messaging.operation.name"] == "ack"
    assert (process.attributes or {})["messaging.system"] == "servicebus"


def test_a_delayed_nack_copy_keeps_the_trace_context(
    queue_url: str, spans: Captured
) -> None:
    # nack(delay) schedules a copy and completes the original: the copy must carry the
    # sender's context on, or the retry would start a trace of its own.
    entity = entity_of(queue_url)
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send(b"order")
    sent = spans.only(f"send {entity}")
    with cloudqueue.open_consumer(queue_url) as consumer:
        first: list[cloudqueue.ReceivedMessage] = []
        deadline = time.monotonic() + 20
        while not first and time.monotonic() < deadline:
            first = consumer.receive(1, wait=1.0)
        first[0].nack(delay=1.0)
    again = receive_one(queue_url)

    assert again.id == first[0].id
    assert again.trace_context == first[0].trace_context == {"traceparent": traceparent_of(sent)}
    assert again.attributes == {}


def test_a_batch_links_each_message_on_send_receive_and_settle(
    queue_url: str, spans: Captured
) -> None:
    entity = entity_of(queue_url)
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send_batch([cloudqueue.Message(f"order {n}".encode()) for n in range(3)])
    received: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(queue_url) as consumer:
        deadline = time.monotonic() + 20
        while len(received) < 3 and time.monotonic() < deadline:
            received += consumer.receive(3 - len(received), wait=1.0)
        for message in received:
            message.ack()

    send = spans.only(f"send {entity}")
    created = {span.context.span_id for span in spans.spans_named(f"create {entity}")}
    assert len(created) == 3
    assert (send.attributes or {})["messaging.batch.message_count"] == 3
    assert {link.context.span_id for link in send.links} == created
    carried = {message.trace_context["traceparent"] for message in received if message.trace_context}
    assert carried == {traceparent_of(span) for span in spans.spans_named(f"create {entity}")}
    for operation in ("receive", "ack"):
        calls = spans.spans_named(f"{operation} {entity}")
        assert {link.context.span_id for span in calls for link in span.links} == created
        for span in calls:
            count = (span.attributes or {}).get("messaging.batch.message_count")
            assert count == (len(span.links) if len(span.links) > 1 else None)


