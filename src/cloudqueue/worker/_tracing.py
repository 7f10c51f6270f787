"""The worker's side of OpenTelemetry: one process tracer per route, when telemetry is on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._telemetry import active

if TYPE_CHECKING:
    from .._telemetry._process import ProcessTracer
    from ..driver import Url
    from ._app import Route

__all__ = ["process_tracer", "source_attributes"]

#: ``messaging.system`` of the schemes whose system the conventions do not name.
_SYSTEMS = {
    "memory": "cloudqueue.memory", "sqlite": "cloudqueue.sqlite", "sqs": "aws_sqs",
    "servicebus": "servicebus", "pubsub": "gcp_pubsub",
}


def source_attributes(url: Url) -> dict[str, str]:
    """``messaging.system``, destination and subscription names of a source URL."""
    params = url.params
    destination = params.get("queue") or params.get("topic") or (url.segments or [url.scheme])[-1]
    attributes = {
        "messaging.system": _SYSTEMS.get(url.scheme, url.scheme),
        "messaging.destination.name": destination,
    }
    if url.subscription:
        attributes["messaging.destination.subscription.name"] = url.subscription
    return attributes


def process_tracer(route: Route, consumer: Any) -> ProcessTracer | None:
    """A tracer for ``route``'s process spans and the worker's instruments, or None
    when telemetry is off (then ``opentelemetry`` is not imported)."""
    telemetry = active()
    if telemetry is None:
        return None
    from .._telemetry._process import ProcessTracer  # imports opentelemetry: only when on

    attributes = source_attributes(consumer.url)
    return ProcessTracer(
        telemetry, attributes["messaging.destination.name"], attributes,
        trace_parent=route.trace_parent, worker=True,
    )
