"""OpenTelemetry through the whole path on memory and SQLite: a message sent by
cloudqueue and processed by the worker is one trace (send, process) with receive and
settle linked to it; retries and the dead letter are events of the process spans."""

from __future__ import annotations

import asyncio

import pytest
import test_telemetry_runtime
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from test_telemetry_runtime import finished, only, queue_name, run_until, send_one

import cloudqueue
from cloudqueue.testing.telemetry import Captured
from cloudqueue.worker import App, FailurePolicy

#: memory and SQLite queues, as in the worker's telemetry tests.
queue_url = test_telemetry_runtime.queue_url


@pytest.fixture
def otel(otel_capture: Captured) -> Captured:
    """The process's in-memory exporter and reader (tests/conftest.py), spans cleared."""
    return otel_capture


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_one_message_sent_and_processed_makes_one_trace(
    otel: Captured, queue_url: str, is_async: bool
) -> None:
    name = queue_name(queue_url)
    send_one(queue_url)
    app = App()
    inside: list[trace.SpanContext] = []

    if is_async:
        @app.handler(queue_url)
        async def on_order(message: cloudqueue.AsyncReceivedMessage) -> None:
            await asyncio.sleep(0)
            inside.append(trace.get_current_span().get_span_context())
    else:
        @app.handler(queue_url)
        def on_order(message: cloudqueue.ReceivedMessage) -> None:  # type: ignore[misc]
            inside.append(trace.get_current_span().get_span_context())

    run_until(app, lambda: app.counters()["processed"] == 1 and bool(finished(otel, "ack ")))

    send = only(finished(otel, f"send {name}"))
    receive = only(finished(otel, f"receive {name}"))
    process = only(finished(otel, f"process {name}"))
    settle = only(finished(otel, f"ack {name}"))
    assert process.kind is SpanKind.CONSUMER and send.kind is SpanKind.PRODUCER
    # The process span continues the sender's trace; receive and settle link to it.
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    for linked in (receive, settle):
        assert [link.context.span_id for link in linked.links] == [send.context.span_id]
    # The handler ran inside the process span.
    assert inside == [process.context]
    attributes = process.attributes or {}
    assert attributes["messaging.operation.name"] == "process"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == name
    assert attributes["messaging.system"] in ("cloudqueue.memory", "cloudqueue.sqlite")
    assert "messaging.message.id" in attributes and "messaging.batch.message_count" not in attributes
    assert process.status.status_code is StatusCode.UNSET


def test_trace_parent_link_starts_a_trace_of_its_own(otel: Captured, queue_url: str) -> None:
    name = queue_name(queue_url)
    send_one(queue_url)
    app = App(trace_parent="link")
    app.add_handler(queue_url, lambda message: None)
    run_until(app, lambda: app.counters()["processed"] == 1)

    send = only(finished(otel, f"send {name}"))
    process = only(finished(otel, f"process {name}"))
    assert process.parent is None
    assert process.context.trace_id != send.context.trace_id
    assert [(link.context.trace_id, link.context.span_id) for link in process.links] == [
        (send.context.trace_id, send.context.span_id)
    ]


def test_retry_then_dead_letter_are_span_events_with_the_reason(otel: Captured, queue_url: str) -> None:
    name = queue_name(queue_url)
    send_one(queue_url, "doomed")
    app = App(policy=FailurePolicy(max_attempts=2, initial_delay=0.05, max_delay=0.1, jitter=0.0))

    @app.handler(queue_url)
    def always_fails(message: cloudqueue.ReceivedMessage) -> None:
        raise ConnectionError("warehouse is down")

    run_until(
        app, lambda: app.counters()["dead_lettered"] == 1 and len(finished(otel, f"process {name}")) > 1
    )

    send = only(finished(otel, f"send {name}"))
    first, second = sorted(finished(otel, f"process {name}"), key=lambda span: span.start_time or 0)
    for attempt in (first, second):
        assert attempt.context.trace_id == send.context.trace_id  # every delivery in the order's trace
        assert attempt.status.status_code is StatusCode.ERROR
        assert (attempt.attributes or {})["error.type"] == "ConnectionError"
        exception = next(event for event in attempt.events if event.name == "exception")
        assert (exception.attributes or {})["exception.message"] == "warehouse is down"
    retry = next(event for event in first.events if event.name == "cloudqueue.retry")
    assert (retry.attributes or {})["cloudqueue.retry.reason"] == "ConnectionError: warehouse is down"
    assert 0.0 <= (retry.attributes or {})["cloudqueue.retry.delay"] <= 0.1  # type: ignore[operator]
    assert not [event for event in second.events if event.name == "cloudqueue.retry"]
    dead = next(event for event in second.events if event.name == "cloudqueue.dead_letter")
    assert (dead.attributes or {})["cloudqueue.dead_letter.reason"] == (
        "failed 2 times; last: ConnectionError: warehouse is down"
    )


