"""OpenTelemetry in the portable layer: send/create, receive and settle spans, client
metrics and the trace-context carrier rules, on memory and SQLite, through the SDK's
in-memory exporter and reader (see cloudqueue.testing.telemetry)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from plugin_registration import registered

import cloudqueue
import cloudqueue.aio
from cloudqueue import Message
from cloudqueue.driver import Capabilities, Limits, SubscriptionDriver, TopicDriver, Url
from cloudqueue.errors import InvalidArgument, PermissionDenied, QueueError
from cloudqueue.providers.memory import LIMITS, MemoryProvider, MemorySubscription, MemoryTopic
from cloudqueue.testing.telemetry import Captured

_names = itertools.count()
tracer = trace.get_tracer("cloudqueue tests")


def _unique() -> str:
    return f"tel{next(_names)}x{time.monotonic_ns()}"


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = _unique()
    made = f"memory://{name}" if request.param == "memory" else f"sqlite:///{tmp_path}/t.db?queue={name}"
    cloudqueue.declare(made, lease=30.0, dead_letter_after=5)
    return made


def destination(url: str) -> str:
    return url.split("queue=")[1] if "queue=" in url else url.split("://")[1]


def system(url: str) -> str:
    return "cloudqueue.memory" if url.startswith("memory") else "cloudqueue.sqlite"


def receive_all(consumer: cloudqueue.Consumer, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.receive(count - len(got), 1.0)
    assert len(got) == count
    return got


def span_id_of(traceparent: str) -> int:
    return int(traceparent.split("-")[2], 16)


def only(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


# -- send ------------------------------------------------------------------------


def test_one_message_carries_the_send_span_context(url: str, otel_capture: Captured) -> None:
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        with tracer.start_as_current_span("request") as request:
            message_id = producer.send(b"x", attributes={"k": "v"})
        [received] = receive_all(consumer, 1)
        received.ack()
    send = only(otel_capture.spans_named(f"send {destination(url)}"))
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert dict(send.attributes or {}) == {
        "messaging.system": system(url),
        "messaging.destination.name": destination(url),
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.message.id": message_id,
    }
    assert not otel_capture.spans_named(f"create {destination(url)}")
    # The application sees its own attributes; the context is kept apart.
    assert received.attributes == {"k": "v"}
    assert received.trace_context is not None
    assert span_id_of(received.trace_context["traceparent"]) == send.context.span_id


def test_a_batch_gets_a_create_span_per_message_linked_from_the_send_span(
    url: str, otel_capture: Captured
) -> None:
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        with tracer.start_as_current_span("request") as request:
            producer.send_batch([Message(b"a"), Message(b"b"), Message(b"c")])
        received = receive_all(consumer, 3)
        for message in received:
            message.ack()
    creates = otel_capture.spans_named(f"create {destination(url)}")
    send = only(otel_capture.spans_named(f"send {destination(url)}"))
    assert len(creates) == 3
    for create in creates:
        assert create.kind is SpanKind.PRODUCER
        assert create.parent is not None
        assert create.parent.span_id == request.get_span_context().span_id
        assert (create.attributes or {})["messaging.operation.type"] == "create"
    assert (send.attributes or {})["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in (send.attributes or {})
    assert {link.context.span_id for link in send.links} == {c.context.span_id for c in creates}
    carried = {span_id_of(m.trace_context["traceparent"]) for m in received if m.trace_context}
    assert carried == {create.context.span_id for create in creates}


def test_the_senders_tracestate_travels_with_the_message(url: str, otel_capture: Captured) -> None:
    remote = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        trace_state=trace.TraceState([("vendor", "opaque-value")]),
    )
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        with trace.use_span(trace.NonRecordingSpan(remote)):
            producer.send(b"x")
        [received] = receive_all(consumer, 1)
        received.ack()
    send = only(otel_capture.spans_named(f"send {destination(url)}"))
    assert send.context.trace_id == remote.trace_id
    assert received.trace_context == {
        "traceparent": f"00-{remote.trace_id:032x}-{send.context.span_id:016x}-01",
        "tracestate": "vendor=opaque-value",
    }


# -- receive and settle ----------------------------------------------------------------


def test_receive_span_links_every_message_and_settle_spans_name_the_settlement(
    url: str, otel_capture: Captured
) -> None:
    with cloudqueue.open_producer(url) as producer:
        ids = producer.send_batch([Message(str(n)) for n in range(4)])
    creates = {c.context.span_id for c in otel_capture.spans_named(f"create {destination(url)}")}
    cloudqueue.declare(url, lease=1.0, dead_letter_after=5)  # renewals come within a second
    with cloudqueue.open_consumer(url, settle_delay=0.0) as consumer:
        received = receive_all(consumer, 4)
        by_body = {message.body: message for message in received}
        by_body[b"0"].ack()
        by_body[b"1"].nack()
        by_body[b"2"].extend(60.0)
        deadline = time.monotonic() + 20
        while not _settled(otel_capture, url, "extend") and time.monotonic() < deadline:
            time.sleep(0.05)  # the consumer renews the lease when it runs low
        by_body[b"2"].ack()
        by_body[b"3"].dead_letter("poison")
    receives = otel_capture.spans_named(f"receive {destination(url)}")
    assert receives
    linked = set()
    for span in receives:
        assert span.kind is SpanKind.CLIENT
        assert (span.attributes or {})["messaging.operation.type"] == "receive"
        linked |= {link.context.span_id for link in span.links}
    assert linked == creates
    settles = otel_capture.settlements(destination(url))
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in settles:
        assert span.kind is SpanKind.CLIENT
        assert (span.attributes or {})["messaging.operation.type"] == "settle"
        by_name.setdefault(str((span.attributes or {})["messaging.operation.name"]), []).append(span)
    assert {"ack", "nack", "extend", "dead_letter"} <= set(by_name)
    for name in ("nack", "dead_letter"):
        span = only(by_name[name])
        assert len(span.links) == 1 and span.links[0].context.span_id in creates
        assert (span.attributes or {})["messaging.message.id"] in ids
    extended = {link.context.span_id for span in by_name["extend"] for link in span.links}
    assert span_id_of(by_body[b"2"].trace_context["traceparent"]) in extended  # type: ignore[index]
    assert extended <= creates
    acked = [link.context.span_id for span in by_name["ack"] for link in span.links]
    assert sorted(acked) == sorted(
        span_id_of(by_body[body].trace_context["traceparent"])  # type: ignore[index]
        for body in (b"0", b"2")
    )


def _settled(captured: Captured, url: str, name: str) -> bool:
    return any(
        (span.attributes or {}).get("messaging.operation.name") == name
        for span in captured.settlements(destination(url))
    )


def test_empty_polls_make_no_receive_span(url: str, otel_capture: Captured) -> None:
    with cloudqueue.open_consumer(url) as consumer:
        assert consumer.receive(1, 0.05) == []
    assert not otel_capture.spans_named(f"receive {destination(url)}")


def test_asyncio_producer_and_consumer_make_the_same_spans(otel_capture: Captured) -> None:
    url = f"memory://{_unique()}"

    async def run() -> tuple[int, cloudqueue.aio.AsyncReceivedMessage]:
        async with cloudqueue.aio.open_producer(url) as producer:
            with tracer.start_as_current_span("task") as task:
                await producer.send(b"x")
        async with cloudqueue.aio.open_consumer(url) as consumer:
            [message] = await consumer.receive(1, 5.0)
            await message.ack()
        return task.get_span_context().span_id, message

    task_id, message = asyncio.run(run())
    send = only(otel_capture.spans_named(f"send {destination(url)}"))
    assert send.parent is not None and send.parent.span_id == task_id
    assert message.trace_context is not None
    assert span_id_of(message.trace_context["traceparent"]) == send.context.span_id
    receive = only(otel_capture.spans_named(f"receive {destination(url)}"))
    assert [link.context.span_id for link in receive.links] == [send.context.span_id]
    settle = only(otel_capture.settlements(destination(url)))
    assert (settle.attributes or {})["messaging.operation.name"] == "ack"


# -- metrics -----------------------------------------------------------------------------


def test_client_metrics_count_messages_and_time_each_call(url: str, otel_capture: Captured) -> None:
    name = destination(url)
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        producer.send(b"1")
        producer.send_batch([Message(b"2"), Message(b"3")])
        for message in receive_all(consumer, 3):
            message.ack()
    [sent] = otel_capture.points(
        "messaging.client.sent.messages", messaging__destination__name=name
    )
    assert sent.value == 3
    assert dict(sent.attributes)["messaging.system"] == system(url)
    consumed = otel_capture.points(
        "messaging.client.consumed.messages", messaging__destination__name=name
    )
    assert sum(point.value for point in consumed) == 3
    [send_calls] = otel_capture.points(
        "messaging.client.operation.duration", messaging__destination__name=name,
        messaging__operation__name="send",
    )
    assert send_calls.count == 2
    assert list(send_calls.explicit_bounds)[:3] == [0.005, 0.01, 0.025]
    acks = otel_capture.points(
        "messaging.client.operation.duration", messaging__destination__name=name,
        messaging__operation__name="ack",
    )
    assert sum(point.count for point in acks) >= 1


# -- failures ------------------------------------------------------------------------------


@dataclasses.dataclass
class Switches:
    """What the test provider's drivers do: fail, and with which limits."""

    limits: Limits = LIMITS
    send_error: QueueError | None = None
    receive_error: QueueError | None = None
    ack_error: QueueError | None = None


class _Topic(MemoryTopic):
    def __init__(self, provider: SwitchedProvider, url: Url) -> None:
        super().__init__(provider.broker.topic(url.host, create_queue=True))
        self.switches = provider.switches

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(super().capabilities, limits=self.switches.limits)

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        if self.switches.send_error is not None:
            return [self.switches.send_error] * len(messages)
        return super().send_batch(messages)


class _Subscription(MemorySubscription):
    def __init__(self, provider: SwitchedProvider, url: Url) -> None:
        super().__init__(provider.broker.subscription(url.host, ""))
        self.switches = provider.switches

    def receive_batch(self, max_messages: int, wait: float) -> list[cloudqueue.driver.Delivery]:
        if self.switches.receive_error is not None:
            raise self.switches.receive_error
        return super().receive_batch(max_messages, wait)

    def ack(self, tokens: Sequence[object]) -> cloudqueue.driver.BatchErrors:
        if self.switches.ack_error is not None:
            raise self.switches.ack_error
        return super().ack(tokens)


class SwitchedProvider(MemoryProvider):
    schemes = ("otelmem",)

    def __init__(self) -> None:
        super().__init__()
        self.switches = Switches()

    def open_topic(self, url: Url) -> TopicDriver:
        return _Topic(self, url)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        return _Subscription(self, url)


@pytest.fixture
def switched() -> Iterator[SwitchedProvider]:
    provider = SwitchedProvider()
    with registered(provider, "telemetry-switches"):
        yield provider


def test_failed_calls_set_error_type_on_spans_and_metrics(
    switched: SwitchedProvider, otel_capture: Captured
) -> None:
    name = _unique()
    url = f"otelmem://{name}"
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        producer.send(b"ok")
        switched.switches.send_error = PermissionDenied("no rights to send")
        with pytest.raises(PermissionDenied):
            producer.send(b"refused")
        switched.switches.send_error = None
        [message] = receive_all(consumer, 1)
        switched.switches.ack_error = PermissionDenied("no rights to ack")
        message.ack()
        consumer.close()  # flushes the ack, which fails
        switched.switches.receive_error = PermissionDenied("no rights to receive")
    with cloudqueue.open_consumer(url) as failing, pytest.raises(PermissionDenied):
        failing.receive(1, 0.1)
    expected = "cloudqueue.errors.PermissionDenied"
    sends = otel_capture.spans_named(f"send {name}")
    assert [(s.attributes or {}).get("error.type") for s in sends] == [None, expected]
    assert sends[1].status.status_code is StatusCode.ERROR
    settle = only(otel_capture.settlements(name))
    assert (settle.attributes or {})["error.type"] == expected
    assert settle.status.status_code is StatusCode.ERROR
    receive = [
        span for span in otel_capture.spans_named(f"receive {name}")
        if (span.attributes or {}).get("error.type") == expected
    ]
    assert len(receive) == 1 and receive[0].status.status_code is StatusCode.ERROR
    [failed] = otel_capture.points(
        "messaging.client.sent.messages", messaging__destination__name=name, error__type=expected
    )
    assert failed.value == 1
    assert otel_capture.points(
        "messaging.client.operation.duration", messaging__destination__name=name,
        messaging__operation__name="receive", error__type=expected,
    )


# -- the carrier rules ---------------------------------------------------------------------------


def test_carrier_attributes_are_stripped_on_receipt_even_from_foreign_senders(url: str) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        # A sender outside cloudqueue writes the attribute itself: past validation.
        driver = producer._driver  # the test plays a foreign SDK
        driver.send_batch([Message(b"x", attributes={"traceparent": traceparent, "k": "v"})])
        [received] = receive_all(consumer, 1)
        received.ack()
    assert received.attributes == {"k": "v"}
    assert received.trace_context == {"traceparent": traceparent}


def test_a_user_attribute_named_like_the_carrier_is_refused(url: str) -> None:
    with cloudqueue.open_producer(url) as producer:
        for name in ("traceparent", "tracestate"):
            with pytest.raises(InvalidArgument, match=f"'{name}' is reserved.*trace context"):
                producer.send(b"x", attributes={name: "mine"})


def test_context_goes_only_where_there_is_room_and_the_drop_is_never_silent(
    switched: SwitchedProvider, otel_capture: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    # As on SQS: ten attributes per message, trace context included.
    switched.switches.limits = dataclasses.replace(LIMITS, max_attributes=10)
    name = _unique()
    url = f"otelmem://{name}"
    # Without a tracestate the context is one attribute (traceparent).
    full = {f"a{n}": "v" for n in range(10)}
    nine = {f"a{n}": "v" for n in range(9)}
    with caplog.at_level(logging.WARNING, logger="cloudqueue"):
        with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
            with tracer.start_as_current_span("request"):
                producer.send(b"fits", attributes=nine)
                producer.send(b"full", attributes=full)
                producer.send(b"full again", attributes=full)
            received = {m.body: m for m in receive_all(consumer, 3)}
            for message in received.values():
                message.ack()
    assert received[b"fits"].trace_context is not None
    assert received[b"fits"].attributes == nine
    assert received[b"full"].trace_context is None
    assert received[b"full"].attributes == full
    sends = otel_capture.spans_named(f"send {name}")
    events = [[event.name for event in span.events] for span in sends]
    assert events == [[], ["cloudqueue.trace_context_dropped"], ["cloudqueue.trace_context_dropped"]]
    reason = str((sends[1].events[0].attributes or {})["reason"])
    assert "10 attributes" in reason and "at most 10" in reason
    warnings = [r for r in caplog.records if "without trace context" in r.getMessage()]
    assert len(warnings) == 1  # once per producer


def test_context_is_dropped_when_it_would_make_the_message_too_large(
    switched: SwitchedProvider, otel_capture: Captured
) -> None:
    switched.switches.limits = dataclasses.replace(LIMITS, max_message_bytes=1000)
    name = _unique()
    url = f"otelmem://{name}"
    with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(url) as consumer:
        with tracer.start_as_current_span("request"):
            producer.send(b"x" * 1000)  # exactly the limit without context
        [received] = receive_all(consumer, 1)
        received.ack()
    assert received.trace_context is None
    send = only(otel_capture.spans_named(f"send {name}"))
    [event] = send.events
    assert "at most 1000 bytes" in str((event.attributes or {})["reason"])


def test_the_application_message_is_left_as_it_was(url: str, otel_capture: Captured) -> None:
    message = Message(b"again", attributes={"k": "v"})
    with cloudqueue.open_producer(url) as producer:
        producer.send(message)
        producer.send(message)  # no carrier attribute was added to it: not refused
    assert message.attributes == {"k": "v"}
    assert len(otel_capture.spans_named(f"send {destination(url)}")) == 2
