"""Capturing cloudqueue's OpenTelemetry spans and metrics in tests (needs ``opentelemetry-sdk``).

A process can set the global tracer and meter providers only once, so every test
shares one SDK provider of each, installed by the first :func:`capture` (or reused if
the application's tests installed one), with one in-memory exporter and reader::

    from cloudqueue.testing.telemetry import capture

    def test_send_makes_a_span():
        captured = capture()
        captured.clear()
        ...
        assert captured.spans_named("send orders")

Metrics are cumulative for the whole process: give each test its own destination
name and select points with :meth:`Captured.points` by its attributes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .._telemetry._otel import LIVE

__all__ = ["Captured", "capture", "traceparent_of"]


@dataclass(frozen=True)
class Captured:
    """What the process's spans and metrics went to."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def clear(self) -> None:
        """Forget the spans finished so far (metrics cannot be forgotten)."""
        self.exporter.clear()

    def spans(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def spans_named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    def only(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError, listing every span, if not one)."""
        found = self.spans_named(name)
        assert len(found) == 1, [span.name for span in self.spans()]
        return found[0]

    def settlements(self, destination: str) -> list[ReadableSpan]:
        """The settle spans (``ack``, ``nack``, ``extend``... ``{destination}``) of a destination."""
        return [
            span for span in self.exporter.get_finished_spans()
            if (span.attributes or {}).get("messaging.operation.type") == "settle"
            and span.name.endswith(f" {destination}")
        ]

    def points(self, metric: str, **attributes: object) -> list[Any]:
        """Data points of ``metric`` whose attributes include ``attributes``
        (dots in attribute names spelled as ``__``: ``messaging__system=...``)."""
        wanted = {name.replace("__", "."): value for name, value in attributes.items()}
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for one in scope.metrics:
                    if one.name == metric:
                        found += [
                            point for point in one.data.data_points
                            if all((point.attributes or {}).get(k) == v for k, v in wanted.items())
                        ]
        return found


def traceparent_of(span: ReadableSpan) -> str:
    """The W3C ``traceparent`` a message created under ``span`` carries."""
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@functools.cache
def capture() -> Captured:
    """The process-wide SDK providers (installed now unless present) with an
    in-memory span exporter and metric reader attached: the same every call."""
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        tracer_provider = trace.get_tracer_provider()
    assert isinstance(tracer_provider, TracerProvider), "another TracerProvider is installed"
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = metrics.get_meter_provider()
    reader = InMemoryMetricReader()
    if isinstance(meter_provider, MeterProvider):
        meter_provider.add_metric_reader(reader)
    else:
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    # cloudqueue remembers "no SDK" for up to a second; a span started in that second
    # (by a serverless adapter, which opens no producer or consumer) would be dropped.
    LIVE.look(time.monotonic())
    return Captured(exporter, reader)
