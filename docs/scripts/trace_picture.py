"""Render the trace of one order as an SVG timeline, from a real run.

    python docs/scripts/trace_picture.py [out.svg]

The scenario runs on the memory backend with the OpenTelemetry SDK and an in-memory
exporter: the shop sends an order (inside its own ``place order`` span), the worker's
handler fails on it twice (one retry, then the dead letter). Every span the run made is
drawn: one row each in the order they started, on a common time axis, indented by
their depth in the tree; spans of
other traces (receive and settle link to the message) are drawn hollow with their link
named; span events (exception, retry, dead letter) are marked on their bar. The SVG is
written by hand: no plotting dependency. docs/observability.md shows its output.
"""

from __future__ import annotations

import asyncio
import html
import logging
import sys
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import cloudqueue
from cloudqueue.worker import App, FailurePolicy

DEFAULT_OUT = Path(__file__).with_name("order_trace.svg")

# Layout, in SVG user units.
ROW, LABEL_WIDTH, CHART_WIDTH, TOP, INDENT = 34, 330, 640, 56, 14
EVENT_COLOURS = {"exception": "#c0392b", "cloudqueue.retry": "#e67e22", "cloudqueue.dead_letter": "#6c3483"}
KIND_COLOURS = {"PRODUCER": "#2e86c1", "CONSUMER": "#28b463", "CLIENT": "#7f8c8d", "INTERNAL": "#34495e"}


def run_scenario() -> list[ReadableSpan]:
    """Send one order and let the worker fail on it until it is dead-lettered."""
    logging.getLogger("cloudqueue").setLevel(logging.ERROR)  # the failures are the point here
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    url = "memory://orders"
    cloudqueue.declare(url, lease=5.0)
    with trace.get_tracer("shop").start_as_current_span("place order"):
        with cloudqueue.open_producer(url) as producer:
            producer.send(cloudqueue.Message('{"order": 1017, "sku": "retired-sku"}'))

    app = App(policy=FailurePolicy(max_attempts=2, initial_delay=0.1, max_delay=0.1, jitter=0.0))

    @app.handler(url, concurrency=1)
    def ship(message: cloudqueue.ReceivedMessage) -> None:
        with trace.get_tracer("shop").start_as_current_span("check stock"):  # a child of process
            time.sleep(0.03)  # long enough to be seen next to the retry delay
        raise LookupError("sku retired-sku is not stocked")

    async def serve_until_dead_lettered() -> None:
        serving = asyncio.create_task(app.serve(grace=5.0))
        deadline = time.monotonic() + 30
        while app.counters()["dead_lettered"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        app.stop()
        await serving

    asyncio.run(serve_until_dead_lettered())
    provider.shutdown()  # ends the exporter's spans: nothing left open
    return list(exporter.get_finished_spans())


def _depths(spans: list[ReadableSpan]) -> dict[int, int]:
    by_id = {span.context.span_id: span for span in spans}
    depths: dict[int, int] = {}
    for span in spans:
        depth, parent = 0, span.parent
        while parent is not None and parent.span_id in by_id:
            depth += 1
            parent = by_id[parent.span_id].parent
        depths[span.context.span_id] = depth
    return depths


def _tick_ms(total_ms: float) -> float:
    """A round step giving four to ten ticks over ``total_ms``."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if total_ms / step <= 10:
            return float(step)
    return total_ms / 10


def render_svg(spans: list[ReadableSpan]) -> str:
    spans = sorted(spans, key=lambda span: span.start_time or 0)  # rows in the order things happened
    depths = _depths(spans)
    names = {span.context.span_id: span.name for span in spans}
    main_trace = next(span.context.trace_id for span in spans if span.name == "place order")
    start = min(span.start_time or 0 for span in spans)
    end = max(span.end_time or 0 for span in spans)
    scale = CHART_WIDTH / max(end - start, 1)
    height = TOP + ROW * len(spans) + 100
    width = LABEL_WIDTH + CHART_WIDTH + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="12" y="22" font-size="15" font-weight="bold">One order: producer, queue, handler, '
        "retry, dead letter</text>",
        f'<text x="12" y="40" fill="#555">trace {main_trace:032x} · {(end - start) / 1e6:.0f} ms · '
        "memory backend, recorded by docs/scripts/trace_picture.py</text>",
    ]
    for row, span in enumerate(spans):
        y = TOP + row * ROW
        kind = span.kind.name
        in_trace = span.context.trace_id == main_trace
        colour = KIND_COLOURS.get(kind, "#34495e")
        x0 = LABEL_WIDTH + ((span.start_time or start) - start) * scale
        bar = max(((span.end_time or end) - (span.start_time or start)) * scale, 2)
        indent = 12 + INDENT * depths[span.context.span_id]
        out.append(f'<text x="{indent}" y="{y + 15}">{html.escape(span.name)} '
                   f'<tspan fill="#888">{kind.lower()}</tspan></text>')
        if not in_trace:
            linked = ", ".join(names.get(link.context.span_id, "?") for link in span.links)
            out.append(f'<text x="{indent}" y="{y + 28}" fill="#888" font-size="10">own trace, '
                       f"linked to: {html.escape(linked)}</text>")
        fill = colour if in_trace else "white"
        out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{bar:.1f}" height="16" rx="3" '
                   f'fill="{fill}" stroke="{colour}" stroke-width="1.5"/>')
        previous = -100.0
        for event in span.events:
            # Events a few microseconds apart would hide each other: set them side by side.
            ex = max(LABEL_WIDTH + (event.timestamp - start) * scale, previous + 11)
            previous = ex
            mark = EVENT_COLOURS.get(event.name, "#000")
            out.append(f'<path d="M{ex:.1f},{y + 1} l5,11 l-5,11 l-5,-11 z" fill="{mark}" stroke="white"/>')
    axis_y = TOP + ROW * len(spans) + 4
    out.append(f'<line x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{LABEL_WIDTH + CHART_WIDTH}" '
               f'y2="{axis_y}" stroke="#999"/>')
    step = _tick_ms((end - start) / 1e6)
    tick = 0.0
    while tick * 1e6 <= end - start:
        tx = LABEL_WIDTH + tick * 1e6 * scale
        out.append(f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 4}" stroke="#999"/>')
        out.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" fill="#777" font-size="10" '
                   f'text-anchor="middle">{tick:.0f} ms</text>')
        tick += step
    legend_y = axis_y + 40
    x = 12
    for label, colour in (("exception", EVENT_COLOURS["exception"]),
                          ("cloudqueue.retry", EVENT_COLOURS["cloudqueue.retry"]),
                          ("cloudqueue.dead_letter", EVENT_COLOURS["cloudqueue.dead_letter"])):
        out.append(f'<path d="M{x + 5},{legend_y - 10} l5,9 l-5,9 l-5,-9 z" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{legend_y + 3}">{label} event</text>')
        x += 30 + 7 * len(label) + 40
    out.append(f'<text x="12" y="{legend_y + 28}" fill="#555">Filled bars: spans of the order\'s trace '
               "(children indented under their parent). Hollow bars: spans in traces of their own "
               "that link to the message.</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    target.write_text(render_svg(run_scenario()), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
