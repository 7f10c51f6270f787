"""Process spans and metrics for the worker and the serverless adapters.

Imported only once telemetry is on (``cloudqueue._telemetry.active()`` is not None), so
it may import ``opentelemetry`` at the top. One :class:`ProcessTracer` per source (a
worker route, an adapter); :meth:`ProcessTracer.begin` starts one ``process`` CONSUMER
span and makes it the current span until :meth:`ProcessScope.end`, in the same thread
or task, so that the handler, its middleware and log records inside carry its ids.

Parenting (messaging conventions): a single message's process span is the child of the
message's creation context (``trace_parent="message"``, the default) or links it
(``"link"``); a batch always links. An adapter may give an explicit parent (the HTTP
request's ``traceparent`` for Pub/Sub push): the messages are then linked.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from ._otel import DURATION_BUCKETS, LIVE, Telemetry, error_type, span_context_of

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from ..driver import Delivery

__all__ = ["DEAD_LETTER_EVENT", "RETRY_EVENT", "ProcessScope", "ProcessTracer", "TraceParent"]

TraceParent = Literal["message", "link"]

#: Span events for what the runtime did with a failed message.
RETRY_EVENT = "cloudqueue.retry"
DEAD_LETTER_EVENT = "cloudqueue.dead_letter"


class _Instruments:
    """The runtime's instruments, made once per :class:`Telemetry` (meter ``cloudqueue``).

    The worker's counters are observed from its lock-free tallies when the SDK
    collects, not counted again per message: four metric calls per message were most
    of the process span's cost. Only ``failed`` is counted as it happens, as it
    carries ``error.type``, which the tallies do not keep.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self.duration = meter.create_histogram(
            "messaging.process.duration", "s", "Duration of processing operation",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.failed = meter.create_counter(
            "cloudqueue.worker.failed", "{message}",
            "Messages whose handler (or a before_process hook) raised",
        )
        #: Each worker route's counters (held weakly) and the attributes to observe them with.
        self.routes: dict[int, tuple[weakref.ref[_Countable], dict[str, AttributeValue]]] = {}
        self.lock = threading.Lock()
        for name, description in (
            ("processed", "Messages whose handler returned"),
            ("retried", "Messages nacked for another delivery"),
            ("dead_lettered", "Messages moved to the dead-letter destination"),
            ("skipped", "Messages acked without running the handler (middleware Skip)"),
        ):
            meter.create_observable_counter(
                f"cloudqueue.worker.{name}", [self._observer(name)], "{message}", description
            )
        meter.create_observable_up_down_counter(
            "cloudqueue.worker.in_flight", [self._observer("in_flight")], "{message}", "Handlers running now"
        )

    def watch(self, counters: _Countable, attributes: dict[str, AttributeValue]) -> None:
        """Observe ``counters`` (a route's) with ``attributes`` while they exist."""
        with self.lock:
            self.routes[id(counters)] = (weakref.ref(counters), attributes)

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self.lock:
                routes = list(self.routes.items())
            sums: dict[frozenset[tuple[str, AttributeValue]], int] = {}
            for key, (ref, attributes) in routes:
                counters = ref()
                if counters is None:
                    with self.lock:
                        self.routes.pop(key, None)
                    continue
                # Two apps may serve the same source: one observation per attribute set.
                group = frozenset(attributes.items())
                sums[group] = sums.get(group, 0) + counters.snapshot()[name]
            return [Observation(value, dict(group)) for group, value in sums.items()]

        return observe


class _Countable(Protocol):
    """What the worker's :class:`~cloudqueue.worker.Counters` offer."""

    def snapshot(self) -> dict[str, int]: ...


_made: dict[int, _Instruments] = {}
_making = threading.Lock()


def _instruments(telemetry: Telemetry) -> _Instruments:
    with _making:
        made = _made.get(id(telemetry))
        if made is None:
            made = _made[id(telemetry)] = _Instruments(telemetry.meter)
        return made


class ProcessTracer:
    """Starts process spans for one source and records the process metrics.

    ``attributes`` are the source's own (``messaging.system``, ``server.address``,
    ``messaging.destination.name``...); ``count_consumed`` is for push-based adapters,
    where no receive call counts ``messaging.client.consumed.messages``;
    ``counters`` (a worker route's) are observed as the ``cloudqueue.worker.*``
    instruments.
    """

    def __init__(
        self,
        telemetry: Telemetry,
        destination: str | None,
        attributes: Mapping[str, AttributeValue],
        *,
        trace_parent: TraceParent = "message",
        count_consumed: bool = False,
        counters: _Countable | None = None,
    ) -> None:
        # Without a destination (a trigger that does not say) the name is the operation's.
        self.name = "process" if destination is None else f"process {destination}"
        self.attributes: dict[str, AttributeValue] = {
            **attributes,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
        }
        if destination is not None:
            self.attributes.setdefault("messaging.destination.name", destination)
        self.trace_parent = trace_parent
        self.tracer = telemetry.tracer
        instruments = _instruments(telemetry)
        self.duration = instruments.duration
        self.consumed = telemetry.consumed if count_consumed else None
        self.failed = instruments.failed
        #: Attributes of the metrics: the span's, without per-message ones.
        self.metric_attributes = {
            key: value for key, value in self.attributes.items() if key != "messaging.message.id"
        }
        if counters is not None:
            instruments.watch(counters, self.metric_attributes)

    def begin(
        self,
        deliveries: Sequence[Delivery],
        *,
        parent: Mapping[str, str] | None = None,
        links: Sequence[Mapping[str, str]] = (),
    ) -> ProcessScope | None:
        """Start the span for ``deliveries`` and make it current; None while no SDK is
        installed (the API alone records nothing, so the handler runs without a span).

        ``parent``: the W3C headers of the request that brought the messages (Pub/Sub
        push): the span is its child and links the messages, as an HTTP server's work
        is the request's child. A span already current (an HTTP server instrumentation
        around the app) wins over the headers, as it is their child already.
        ``links``: more W3C contexts to link (e.g. one converted from ``AWSTraceHeader``).
        """
        if not LIVE():
            return None
        contexts = [span_context_of(delivery.trace_context) for delivery in deliveries]
        single = len(deliveries) == 1
        parent_context: otel_context.Context | None = None
        linked: list[Link] = []
        explicit = span_context_of(parent)
        if explicit is not None:
            if not trace.get_current_span().get_span_context().is_valid:
                parent_context = trace.set_span_in_context(trace.NonRecordingSpan(explicit))
        elif single and self.trace_parent == "message" and contexts[0] is not None:
            parent_context = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0]))
            contexts = []
        for delivery, found in zip(deliveries, contexts, strict=False):
            if found is not None:
                # Per-message attributes go on the links (messaging conventions).
                linked.append(Link(found, None if single else {"messaging.message.id": delivery.id}))
        for headers in links:
            found = span_context_of(headers)
            if found is not None and all(found != link.context for link in linked):
                linked.append(Link(found))
        attributes = dict(self.attributes)
        if single:
            attributes.update(_message_attributes(deliveries[0], attributes))
        else:
            attributes["messaging.batch.message_count"] = len(deliveries)
        span = self.tracer.start_span(
            self.name, context=parent_context, kind=SpanKind.CONSUMER, attributes=attributes,
            links=linked,
        )
        if self.consumed is not None:
            self.consumed.add(len(deliveries), self.metric_attributes)
        return ProcessScope(self, span)


def _message_attributes(
    delivery: Delivery, source: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {"messaging.message.id": delivery.id}
    system = source.get("messaging.system")
    attempt = delivery.delivery_attempt
    if system == "servicebus" and attempt is not None:
        found["messaging.servicebus.message.delivery_count"] = attempt
    elif system == "gcp_pubsub":
        if attempt is not None:
            found["messaging.gcp_pubsub.message.delivery_attempt"] = attempt
        if delivery.ordering_key:
            found["messaging.gcp_pubsub.message.ordering_key"] = delivery.ordering_key
    return found


class ProcessScope:
    """One process span while it is current; end it exactly once, in the same thread or task."""

    __slots__ = ("_error_type", "_started", "_token", "span", "tracer")

    def __init__(self, tracer: ProcessTracer, span: trace.Span) -> None:
        self.tracer = tracer
        self.span = span
        self._error_type: str | None = None
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._started = time.perf_counter()

    def failed(self, error: BaseException) -> None:
        """The handler (or a hook) raised ``error``."""
        self._error_type = error_type(error)
        self.span.record_exception(error)
        self.span.set_attribute("error.type", self._error_type)
        self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))

    def retried(self, delay: float | None, reason: str) -> None:
        """The message was nacked for another delivery after ``delay`` seconds (None:
        the trigger's own redelivery policy decides)."""
        attributes: dict[str, AttributeValue] = {"cloudqueue.retry.reason": reason}
        if delay is not None:
            attributes["cloudqueue.retry.delay"] = float(delay)
        self.span.add_event(RETRY_EVENT, attributes)

    def dead_lettered(self, reason: str) -> None:
        self.span.add_event(DEAD_LETTER_EVENT, {"cloudqueue.dead_letter.reason": reason})

    def end(self, count_failure: bool = False) -> None:
        """Stop being current, end the span, record the duration; ``count_failure``:
        count it in ``cloudqueue.worker.failed`` (the worker's ``failed``)."""
        otel_context.detach(self._token)
        self.span.end()
        tracer = self.tracer
        attributes = tracer.metric_attributes
        if self._error_type is not None:
            attributes = {**attributes, "error.type": self._error_type}
        tracer.duration.record(time.perf_counter() - self._started, attributes)
        if count_failure:
            tracer.failed.add(1, attributes)
