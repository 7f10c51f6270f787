"""OpenTelemetry in the runtimes: the worker's process spans and instruments, and log
records inside a handler carrying the process span's ids.

Spans and metrics are read from the SDK's in-memory exporter and reader."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan

import cloudqueue
from cloudqueue.errors import InvalidArgument
from cloudqueue.testing.telemetry import Captured
from cloudqueue.testing.worker import serve_until as run_until
from cloudqueue.worker import App, DoNotRetry, FailurePolicy

_names = itertools.count()


@pytest.fixture
def otel(otel_capture: Captured) -> Captured:
    """The process's in-memory exporter and reader (tests/conftest.py), spans cleared."""
    return otel_capture


def finished(captured: Captured, name_prefix: str = "") -> list[ReadableSpan]:
    """The finished spans whose names start with ``name_prefix``."""
    return [span for span in captured.spans() if span.name.startswith(name_prefix)]


@pytest.fixture(params=["memory", "sqlite"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = f"tr{next(_names)}x{time.monotonic_ns()}"
    url = f"memory://{name}" if request.param == "memory" else f"sqlite:///{tmp_path}/t.db?queue={name}"
    cloudqueue.declare(url, lease=5.0)
    return url


def queue_name(url: str) -> str:
    return url.split("queue=")[1] if "queue=" in url else url.split("://")[1]




def send_one(url: str, body: str = "order-1") -> None:
    with cloudqueue.open_producer(url) as producer:
        producer.send(cloudqueue.Message(body))


def only(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


# -- the trace_parent option -------------------------------------------------------------


def test_trace_parent_is_checked() -> None:
    with pytest.raises(InvalidArgument, match="trace_parent must be 'message' or 'link', not 'parent'"):
        App(trace_parent="parent")  # type: ignore[arg-type]
    app = App()
    with pytest.raises(InvalidArgument, match="trace_parent"):
        app.add_handler("memory://q", lambda message: None, trace_parent="both")  # type: ignore[arg-type]


# -- failures: retry events, then the dead letter ----------------------------------------


def test_do_not_retry_dead_letters_at_once(otel: Captured, queue_url: str) -> None:
    name = queue_name(queue_url)
    send_one(queue_url, "bad")
    app = App()

    @app.handler(queue_url)
    def refuses(message: cloudqueue.ReceivedMessage) -> None:
        raise DoNotRetry("order without id")

    run_until(app, lambda: app.counters()["dead_lettered"] == 1 and bool(finished(otel, f"process {name}")))
    process = only(finished(otel, f"process {name}"))
    assert [event.name for event in process.events] == ["exception", "cloudqueue.dead_letter"]
    assert (process.attributes or {})["error.type"] == "cloudqueue.worker._policy.DoNotRetry"


# -- the worker's counters as instruments ------------------------------------------------


def test_worker_counters_and_process_duration_are_instruments(otel: Captured, queue_url: str) -> None:
    name = queue_name(queue_url)
    with cloudqueue.open_producer(queue_url) as producer:
        producer.send_batch([cloudqueue.Message(body) for body in ("ok", "ok", "bad")])
    app = App(policy=FailurePolicy(max_attempts=1))

    @app.handler(queue_url)
    def on_order(message: cloudqueue.ReceivedMessage) -> None:
        if message.text() == "bad":
            raise ValueError("bad order")

    run_until(app, lambda: app.counters()["dead_lettered"] == 1 and app.counters()["processed"] == 2)

    def total(metric: str, **attributes: object) -> int:
        points = otel.points(metric, **{"messaging.destination.name": name}, **attributes)
        return sum(point.value for point in points)

    assert total("cloudqueue.worker.processed") == 2
    assert total("cloudqueue.worker.failed", **{"error.type": "ValueError"}) == 1
    assert total("cloudqueue.worker.dead_lettered") == 1
    assert total("cloudqueue.worker.retried") == 0
    assert total("cloudqueue.worker.in_flight") == 0  # up and down again
    durations = otel.points("messaging.process.duration", **{"messaging.destination.name": name})
    assert sum(point.count for point in durations) == 3
    assert {point.attributes.get("error.type") for point in durations} == {None, "ValueError"}
    assert list(durations[0].explicit_bounds)[:3] == [0.005, 0.01, 0.025]


# -- logging: records inside a handler carry the process span's ids -----------------------


def test_log_records_in_a_handler_carry_the_process_span_ids(otel: Captured, queue_url: str) -> None:
    name = queue_name(queue_url)
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    handler = LoggingHandler(logger_provider=logger_provider)
    logger = logging.getLogger(f"shop.orders.{name}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    send_one(queue_url)
    app = App()

    @app.handler(queue_url)
    def on_order(message: cloudqueue.ReceivedMessage) -> None:
        logger.info("shipping order %s", message.text())

    try:
        run_until(app, lambda: app.counters()["processed"] == 1)
    finally:
        logger.removeHandler(handler)
        logger_provider.shutdown()
    logger.info("after the handler: no span")

    process = only(finished(otel, f"process {name}"))
    (record,) = [one.log_record for one in logs.get_finished_logs()]
    assert record.body == "shipping order order-1"
    assert (record.trace_id, record.span_id) == (process.context.trace_id, process.context.span_id)
