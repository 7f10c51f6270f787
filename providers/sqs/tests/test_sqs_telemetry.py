"""Tracing on SQS: W3C ``traceparent`` travels as a String message attribute, what the
OpenTelemetry contrib boto3 instrumentation writes and reads (with the global propagator),
so plain boto3 code and cloudqueue continue each other's traces; the 10-attribute budget;
one message sent by cloudqueue and processed by the worker makes one trace."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.telemetry import Captured, capture, traceparent_of
from cloudqueue.worker import App
from conftest import sqs_client
from conftest_driver import SqsHarness, aws_environment, endpoint_url
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter

__all__ = ["aws_environment", "endpoint_url"]

DROPPED_EVENT = "cloudqueue.trace_context_dropped"


@pytest.fixture
def spans() -> Iterator[Captured]:
    """The process's shared SDK providers' spans and metrics, spans cleared around the test."""
    captured = capture()
    captured.clear()
    yield captured
    captured.clear()


@pytest.fixture
def queue(endpoint_url: str) -> Iterator[tuple[str, str]]:
    """A fresh queue with a dead-letter queue: (name, cloudqueue URL)."""
    name = unique_name("traced")
    url = SqsHarness(endpoint_url).url(name)
    cloudqueue.declare(url, dead_letter_after=5, lease=5.0)
    yield name, url
    for each in (url, cloudqueue.dead_letter_url(url)):
        with contextlib.suppress(cloudqueue.QueueError):
            cloudqueue.delete(each)


class MessageAttributesGetter(Getter[Mapping[str, Any]]):
    """Reads W3C headers from SQS MessageAttributes, as the contrib instrumentation does."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [str(value["StringValue"])]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


def receive(url: str, count: int) -> list[cloudqueue.ReceivedMessage]:
    """Receive and ack ``count`` messages (within 20 s)."""
    received: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(url) as consumer:
        deadline = time.monotonic() + 20
        while len(received) < count and time.monotonic() < deadline:
            received += consumer.receive(count - len(received), wait=1.0)
        for message in received:
            message.ack()
    assert len(received) == count
    return received


def boto3_receive_one(client: Any, queue_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.receive_message(
            QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
        )
        for message in answer.get("Messages") or ():
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return dict(message)
    raise AssertionError("nothing received within 20 s")


def test_a_message_cloudqueue_traced_carries_traceparent_for_boto3(
    endpoint_url: str, queue: tuple[str, str], spans: Captured
) -> None:
    name, url = queue
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"order", attributes={"kind": "new"})
    sent = spans.only(f"send {name}")

    client = sqs_client(endpoint_url)
    raw = boto3_receive_one(client, client.get_queue_url(QueueName=name)["QueueUrl"])

    attributes = raw["MessageAttributes"]
    assert attributes["traceparent"] == {"DataType": "String", "StringValue": traceparent_of(sent)}
    assert attributes["kind"]["StringValue"] == "new"
    continued = trace.get_current_span(
        propagate.extract(attributes, getter=MessageAttributesGetter())
    ).get_span_context()
    assert (continued.trace_id, continued.span_id) == (sent.context.trace_id, sent.context.span_id)


def test_a_message_boto3_sent_with_traceparent_is_continued_by_cloudqueue(
    endpoint_url: str, queue: tuple[str, str], spans: Captured
) -> None:
    name, url = queue
    client = sqs_client(endpoint_url)
    headers: dict[str, str] = {}
    with trace.get_tracer("test").start_as_current_span("legacy producer") as producing:
        propagate.inject(headers)
    message_attributes = {
        key: {"DataType": "String", "StringValue": value} for key, value in headers.items()
    }
    message_attributes["kind"] = {"DataType": "String", "StringValue": "new"}
    client.send_message(
        QueueUrl=client.get_queue_url(QueueName=name)["QueueUrl"],
        MessageBody="order",
        MessageAttributes=message_attributes,
    )
    context = producing.get_span_context()

    [message] = receive(url, 1)

    assert message.attributes == {"kind": "new"}
    assert message.trace_context == {"traceparent": headers["traceparent"]}
    for span_name in (f"receive {name}", f"ack {name}"):
        span = spans.only(span_name)
        assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
            (context.trace_id, context.span_id)
        ]


def test_trace_context_counts_against_the_attribute_budget(
    endpoint_url: str, queue: tuple[str, str], spans: Captured
) -> None:
    name, url = queue
    with cloudqueue.open_producer(url) as producer:
        limit = producer.capabilities.limits.max_attributes
        assert limit == 8  # SQS's 10, less the body marker and the dead-letter reason's slot
        # Binary bodies take the marker attribute: the fullest message SQS sees.
        producer.send(b"\x00 room", attributes={f"a{n}": "x" for n in range(limit - 1)})
        producer.send(b"\x00 full", attributes={f"a{n}": "x" for n in range(limit)})
    with_room, full = spans.spans_named(f"send {name}")
    assert [event.name for event in with_room.events] == []
    [dropped] = full.events
    assert dropped.name == DROPPED_EVENT
    assert f"at most {limit} attributes" in str((dropped.attributes or {})["reason"])

    received = {message.body: message for message in receive(url, 2)}
    assert received[b"\x00 room"].trace_context == {"traceparent": traceparent_of(with_room)}
    assert received[b"\x00 full"].trace_context is None
    assert len(received[b"\x00 full"].attributes) == limit


def test_a_dead_lettered_copy_keeps_the_trace_context(
    queue: tuple[str, str], spans: Captured
) -> None:
    # The copy sent to the dead-letter queue carries the sender's context on, so whoever
    # reads dead letters continues the message's trace.
    name, url = queue
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"poison", attributes={f"a{n}": "x" for n in range(7)})
    sent = spans.only(f"send {name}")
    with cloudqueue.open_consumer(url) as consumer:
        received: list[cloudqueue.ReceivedMessage] = []
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            received = consumer.receive(1, wait=1.0)
        received[0].dead_letter("unreadable")

    [dead] = receive(cloudqueue.dead_letter_url(url), 1)

    assert dead.trace_context == {"traceparent": traceparent_of(sent)}
    assert dead.attributes["dead_letter_reason"] == "unreadable"  # 7 + traceparent + reason


def test_cloudqueue_spans_describe_the_endpoint_and_queue(
    endpoint_url: str, queue: tuple[str, str], spans: Captured
) -> None:
    name, url = queue
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"order")
    receive(url, 1)

    queue_url = sqs_client(endpoint_url).get_queue_url(QueueName=name)["QueueUrl"]
    host, port = endpoint_url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    for span_name in (f"send {name}", f"receive {name}", f"ack {name}"):
        attributes = spans.only(span_name).attributes or {}
        assert attributes["messaging.system"] == "aws_sqs"
        assert attributes["messaging.destination.name"] == name
        assert attributes["server.address"] == host
        assert attributes["server.port"] == int(port)
        assert attributes["aws.sqs.queue.url"] == queue_url
    for metric in ("messaging.client.sent.messages", "messaging.client.consumed.messages"):
        [point] = spans.points(metric, messaging__destination__name=name)
        assert point.value == 1
        assert point.attributes["messaging.system"] == "aws_sqs"


def test_a_batch_links_each_message_on_send_receive_and_settle(
    queue: tuple[str, str], spans: Captured
) -> None:
    name, url = queue
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(f"order {n}".encode()) for n in range(3)])
    received = receive(url, 3)

    send = spans.only(f"send {name}")
    creates = spans.spans_named(f"create {name}")
    created = {span.context.span_id for span in creates}
    assert len(created) == 3
    assert (send.attributes or {})["messaging.batch.message_count"] == 3
    assert {link.context.span_id for link in send.links} == created
    carried = {(message.trace_context or {}).get("traceparent") for message in received}
    assert carried == {traceparent_of(span) for span in creates}
    for operation in ("receive", "ack"):
        calls = spans.spans_named(f"{operation} {name}")
        assert {link.context.span_id for span in calls for link in span.links} == created
        for span in calls:
            count = (span.attributes or {}).get("messaging.batch.message_count")
            assert count == (len(span.links) if len(span.links) > 1 else None)


def test_one_trace_from_send_to_settle_through_the_worker(
    queue: tuple[str, str], spans: Captured
) -> None:
    name, url = queue
    with trace.get_tracer("test").start_as_current_span("place order") as placing:
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"order", attributes={"kind": "new"})
    seen: list[dict[str, str]] = []
    app = App(poll_wait=0.5)

    @app.handler(url, concurrency=1)
    def on_order(message: cloudqueue.ReceivedMessage) -> None:
        seen.append(dict(message.attributes))

    asyncio.run(serve_until(app, lambda: app.counters()["processed"] >= 1))

    assert seen == [{"kind": "new"}]
    trace_id = placing.get_span_context().trace_id
    send = spans.only(f"send {name}")
    process = spans.only(f"process {name}")
    assert {send.context.trace_id, process.context.trace_id} == {trace_id}
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.kind == trace.SpanKind.CONSUMER
    for span_name in (f"receive {name}", f"ack {name}"):
        links = [link.context.span_id for span in spans.spans_named(span_name) for link in span.links]
        assert links == [send.context.span_id]
    assert (spans.only(f"ack {name}").attributes or {})["messaging.operation.name"] == "ack"
    assert (process.attributes or {})["messaging.system"] == "aws_sqs"


async def serve_until(app: App, done: Any, timeout: float = 30.0) -> None:
    serving = asyncio.create_task(app.serve(grace=5.0))
    deadline = time.monotonic() + timeout
    try:
        while not done() and not serving.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        app.stop()
        await serving
    assert done(), f"not done within {timeout} s: {app.counters()}"
