"""Tracing on Pub/Sub: cloudqueue and google-cloud-pubsub's own OpenTelemetry tracing
(``enable_open_telemetry_tracing``) continue each other's traces through the attributes
``googclient_traceparent`` / ``googclient_tracestate``, and one message sent by cloudqueue
and processed by the worker makes one trace."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.telemetry import Captured, capture, traceparent_of
from cloudqueue.worker import App
from google.cloud import pubsub_v1
from opentelemetry import trace

from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "traced"


@pytest.fixture
def spans() -> Iterator[Captured]:
    """The process's shared SDK providers' spans and metrics, spans cleared around the test."""
    captured = capture()
    captured.clear()
    yield captured
    captured.clear()


@pytest.fixture
def topic_id(server: PubSubServer) -> str:
    """A topic with one subscription of the same name (declared through cloudqueue)."""
    topic = unique_name("traced")
    cloudqueue.declare(f"pubsub://{PROJECT}/{topic}?subscription={topic}", lease=10.0)
    return topic


def url_of(topic_id: str) -> str:
    return f"pubsub://{PROJECT}/{topic_id}?subscription={topic_id}"


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


def test_a_message_the_client_traced_is_continued_by_cloudqueue(
    topic_id: str, spans: Captured
) -> None:
    options = pubsub_v1.types.PublisherOptions(enable_open_telemetry_tracing=True)
    publisher = pubsub_v1.PublisherClient(publisher_options=options)
    try:
        topic = publisher.topic_path(PROJECT, topic_id)
        publisher.publish(topic, b"order", kind="new").result(timeout=10)
    finally:
        publisher.stop()
    created = spans.only(f"{topic_id} create")  # the client's per-message PRODUCER span

    [message] = receive(url_of(topic_id), 1)

    assert message.attributes == {"kind": "new"}  # googclient_traceparent stripped
    assert message.trace_context == {"traceparent": traceparent_of(created)}
    for name in (f"receive {topic_id}", f"ack {topic_id}"):
        span = spans.only(name)
        assert [link.context.span_id for link in span.links] == [created.context.span_id]
        assert span.links[0].context.trace_id == created.context.trace_id


def test_a_message_cloudqueue_traced_is_continued_by_the_client(
    topic_id: str, spans: Captured
) -> None:
    with cloudqueue.open_producer(url_of(topic_id)) as producer:
        producer.send(b"order", attributes={"kind": "new"})
    sent = spans.only(f"send {topic_id}")

    arrived = threading.Event()
    seen: list[Any] = []

    def callback(message: Any) -> None:
        seen.append(message)
        message.ack()
        arrived.set()

    options = pubsub_v1.types.SubscriberOptions(enable_open_telemetry_tracing=True)
    with pubsub_v1.SubscriberClient(subscriber_options=options) as subscriber:
        future = subscriber.subscribe(subscriber.subscription_path(PROJECT, topic_id), callback)
        try:
            assert arrived.wait(20)
        finally:
            future.cancel()
            future.result(timeout=10)

    assert seen[0].attributes["googclient_traceparent"] == traceparent_of(sent)
    # The client's subscribe span continues the trace as the sender's child.
    subscribe = spans.only(f"{topic_id} subscribe")
    assert subscribe.parent is not None
    assert (subscribe.parent.trace_id, subscribe.parent.span_id) == (
        sent.context.trace_id, sent.context.span_id,
    )


def test_cloudqueue_spans_describe_the_server_and_subscription(
    server: PubSubServer, topic_id: str, spans: Captured
) -> None:
    with cloudqueue.open_producer(url_of(topic_id)) as producer:
        producer.send(b"order")
    receive(url_of(topic_id), 1)

    for name in (f"send {topic_id}", f"receive {topic_id}", f"ack {topic_id}"):
        attributes = spans.only(name).attributes or {}
        assert attributes["messaging.system"] == "gcp_pubsub"
        assert attributes["messaging.destination.name"] == topic_id
        assert attributes["server.address"] == server.host
        assert attributes["server.port"] == server.port
    for metric in ("messaging.client.sent.messages", "messaging.client.consumed.messages"):
        [point] = spans.points(metric, messaging__destination__name=topic_id)
        assert point.value == 1
        assert point.attributes["messaging.system"] == "gcp_pubsub"
    for name in (f"receive {topic_id}", f"ack {topic_id}"):
        attributes = spans.only(name).attributes or {}
        assert attributes["messaging.destination.subscription.name"] == topic_id


def test_a_user_attribute_with_a_carrier_name_is_refused(topic_id: str) -> None:
    with cloudqueue.open_producer(url_of(topic_id)) as producer:
        with pytest.raises(cloudqueue.InvalidArgument, match="googclient_traceparent"):
            producer.send(b"order", attributes={"googclient_traceparent": "mine"})


def test_a_batch_links_each_message_on_send_receive_and_settle(
    topic_id: str, spans: Captured
) -> None:
    with cloudqueue.open_producer(url_of(topic_id)) as producer:
        producer.send_batch([cloudqueue.Message(f"order {n}".encode()) for n in range(3)])
    received = receive(url_of(topic_id), 3)

    send = spans.only(f"send {topic_id}")
    creates = spans.spans_named(f"create {topic_id}")
    created = {span.context.span_id for span in creates}
    assert len(created) == 3
    assert (send.attributes or {})["messaging.batch.message_count"] == 3
    assert {link.context.span_id for link in send.links} == created
    carried = {(message.trace_context or {}).get("traceparent") for message in received}
    assert carried == {traceparent_of(span) for span in creates}
    for operation in ("receive", "ack"):
        calls = spans.spans_named(f"{operation} {topic_id}")
        assert {link.context.span_id for span in calls for link in span.links} == created
        for span in calls:
            count = (span.attributes or {}).get("messaging.batch.message_count")
            assert count == (len(span.links) if len(span.links) > 1 else None)


def test_one_trace_from_send_to_settle_through_the_worker(
    topic_id: str, spans: Captured
) -> None:
    url = url_of(topic_id)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("place order") as placing:
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
    send = spans.only(f"send {topic_id}")
    process = spans.only(f"process {topic_id}")
    assert {send.context.trace_id, process.context.trace_id} == {trace_id}
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.kind == trace.SpanKind.CONSUMER
    for name in (f"receive {topic_id}", f"ack {topic_id}"):
        links = [link.context.span_id for span in spans.spans_named(name) for link in span.links]
        assert links == [send.context.span_id]
    assert (spans.only(f"ack {topic_id}").attributes or {})["messaging.operation.name"] == "ack"
    attributes = process.attributes or {}
    assert attributes["messaging.system"] == "gcp_pubsub"
    assert attributes["messaging.destination.subscription.name"] == topic_id


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
