"""The worker's side of OpenTelemetry: one process tracer per route, when telemetry is on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._telemetry import active

if TYPE_CHECKING:
    from .._telemetry._process import ProcessTracer
    from ._app import Route

__all__ = ["process_tracer"]


def process_tracer(route: Route, consumer: Any) -> ProcessTracer | None:
    """A tracer for ``route``'s process spans and the worker's instruments, or None
    when telemetry is off (then ``opentelemetry`` is not imported). The spans say what
    the consumer's own spans say about the source (system, destination, server)."""
    telemetry = active()
    if telemetry is None:
        return None
    from .._telemetry._process import ProcessTracer  # imports opentelemetry: only when on

    attributes = consumer.telemetry_attributes
    destination = attributes.get("messaging.destination.name")
    return ProcessTracer(
        telemetry, None if destination is None else str(destination), attributes,
        trace_parent=route.trace_parent, counters=route.counters,
    )
