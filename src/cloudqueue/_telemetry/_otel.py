"""The OpenTelemetry implementation: client spans (``send``, ``create``, ``receive``,
``settle``) and client metrics, called by the engine at its driver calls.

Imported only when telemetry is on (see :func:`cloudqueue._telemetry.active`), so it
imports ``opentelemetry`` at the top. Tracer and meter come from the global providers
through the API's proxies, so an SDK configured after the first producer still gets
everything from then on.

Context travels in W3C form whatever the application's global propagator: each
provider's :class:`~cloudqueue.driver.TraceCarrier` says under which attribute names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._message import Message
from ..errors import QueueError
from ._attributes import destination_attributes
from ._carrier import carrier_names, inject

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from .._engine.effects import Step
    from ..driver import Delivery, Limits, SubscriptionDriver, TopicDriver, TraceCarrier

__all__ = [
    "CONTEXT_DROPPED_EVENT", "DURATION_BUCKETS", "ConsumerTelemetry", "ProducerTelemetry",
    "Telemetry", "error_type", "span_context_of",
]

log = logging.getLogger("cloudqueue")

#: Advised buckets of the messaging duration histograms (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
#: Send span event when a message goes without trace context (no room for it).
CONTEXT_DROPPED_EVENT = "cloudqueue.trace_context_dropped"

# Always W3C: the carriers store W3C header values whatever the global propagator.
_W3C = TraceContextTextMapPropagator()
# What a traceparent looks like (version 00): its length is fixed, so a message can be
# measured with this stand-in before the span whose id it will carry exists.
_TRACEPARENT_STAND_IN = "00-" + "0" * 32 + "-" + "0" * 16 + "-00"
_PRODUCER, _CLIENT = SpanKind.PRODUCER, SpanKind.CLIENT


def error_type(error: BaseException) -> str:
    """The exception's fully qualified class name (``error.type``), builtins unqualified."""
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def span_context_of(headers: Mapping[str, str] | None) -> trace.SpanContext | None:
    """The remote span context in W3C ``headers`` (traceparent, tracestate), if valid."""
    if not headers or "traceparent" not in headers:
        return None
    carried = _W3C.extract(headers, context=otel_context.Context())
    found = trace.get_current_span(carried).get_span_context()
    return found if found.is_valid else None


class Telemetry:
    """What the engine and the runtimes call when telemetry is on: one per process."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer("cloudqueue")
        self.meter = metrics.get_meter("cloudqueue")
        self.sent = self.meter.create_counter(
            "messaging.client.sent.messages", "{message}", "Messages the producer tried to send"
        )
        self.consumed = self.meter.create_counter(
            "messaging.client.consumed.messages", "{message}", "Messages received"
        )
        self.operation_duration = self.meter.create_histogram(
            "messaging.client.operation.duration", "s", "Duration of one driver call",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def producer(self, driver: TopicDriver, where: str) -> ProducerTelemetry:
        return ProducerTelemetry(self, driver, where)

    def consumer(self, driver: SubscriptionDriver, where: str) -> ConsumerTelemetry:
        return ConsumerTelemetry(self, driver, where)


class _Traced(Message):
    """A copy of an application's message, prepared for sending with trace
    context: ``parent`` is the context it was sent from; ``dropped`` why it goes
    without one (None: its carrier attributes hold stand-ins until the send)."""

    __slots__ = ("carrier", "dropped", "parent")

    carrier: TraceCarrier
    parent: otel_context.Context
    dropped: str | None


class ProducerTelemetry:
    """Spans and metrics of one producer."""

    def __init__(self, telemetry: Telemetry, driver: TopicDriver, where: str) -> None:
        self.telemetry = telemetry
        self.tracer = telemetry.tracer
        attributes = destination_attributes(driver, where)
        destination = attributes.get("messaging.destination.name", "")
        self.send_name = f"send {destination}"
        self.create_name = f"create {destination}"
        # Built once: every send uses them.
        self.send_attributes = _operation(attributes, "send", "send")
        self.create_attributes = _operation(attributes, "create", "create")
        self.where = where
        self.warned = False
        #: Whether spans and metrics are recorded at all: the engine asks before each call.
        self.live = LIVE.check
        LIVE.look(time.monotonic())

    def prepare(
        self,
        messages: Sequence[Message],
        sizes: list[int],
        limits: Limits,
        measure: Callable[[Message], int],
    ) -> tuple[Sequence[Message], list[int]]:
        """Copies of ``messages`` that carry stand-ins for the trace context, and
        their sizes with it: called in the sender's own thread or task (whose
        current span becomes the parent), after validation, before batching, so
        that batches are cut by the sizes that go on the wire."""
        parent = otel_context.get_current()
        parent_context = trace.get_current_span(parent).get_span_context()
        if not parent_context.is_valid and not _sdk_installed():
            return messages, sizes  # no span will have a context to carry: nothing to do
        headers = {"traceparent": _TRACEPARENT_STAND_IN}
        if parent_context.trace_state:  # a child span inherits it
            headers["tracestate"] = parent_context.trace_state.to_header()
        carrier = limits.trace_carrier
        carried: dict[str, str] = {}
        inject(carrier, headers, carried)
        prepared: list[Message] = []
        prepared_sizes: list[int] = []
        for message in messages:
            copy = _Traced.__new__(_Traced)
            copy.body = message.body
            copy.ordering_key = message.ordering_key
            copy.deduplication_id = message.deduplication_id
            copy.delay = message.delay
            copy.carrier = carrier
            copy.parent = parent
            copy.dropped = _no_room(message.attributes, carried, limits)
            if copy.dropped is None:
                copy.attributes = {**message.attributes, **carried}
                size = measure(copy)
                if size > limits.max_message_bytes:
                    copy.dropped = (
                        f"with trace context the message would be {size} bytes; at most "
                        f"{limits.max_message_bytes} bytes are accepted"
                    )
            if copy.dropped is not None:
                copy.attributes = message.attributes
                size = measure(copy)
                self._warn_once(copy.dropped)
            prepared.append(copy)
            prepared_sizes.append(size)
        return prepared, prepared_sizes

    def _warn_once(self, reason: str) -> None:
        if not self.warned:
            self.warned = True
            log.warning(
                "sending to %s without trace context: %s (logged once per producer; "
                "each such send span has a %s event)", self.where, reason, CONTEXT_DROPPED_EVENT,
            )

    def send(self, messages: Sequence[Message], call: Step[list[Any]]) -> Step[list[Any]]:
        """Run ``call`` (the driver send of ``messages``, with its retries) in a
        ``send`` span, writing each message's trace context first."""
        tracer = self.tracer
        count = len(messages)
        if count == 1:
            message = messages[0]
            parent = message.parent if isinstance(message, _Traced) else None
            span = tracer.start_span(self.send_name, parent, _PRODUCER, self.send_attributes)
            _carry(message, span)
        else:
            links = []
            for message in messages:
                parent = message.parent if isinstance(message, _Traced) else None
                create = tracer.start_span(
                    self.create_name, parent, _PRODUCER, self.create_attributes
                )
                _carry(message, create)
                create.end()
                links.append(Link(create.get_span_context()))
            span = tracer.start_span(
                self.send_name, None, _PRODUCER,
                {**self.send_attributes, "messaging.batch.message_count": count}, links,
            )
        started = time.perf_counter()
        try:
            outcomes = yield from call
        except BaseException as error:
            span.record_exception(error)
            self._ended(span, started, count, count, error_type(error))
            raise
        failed = [outcome for outcome in outcomes if isinstance(outcome, QueueError)]
        if count == 1 and not failed:
            span.set_attribute("messaging.message.id", outcomes[0])
        self._ended(span, started, count, len(failed), error_type(failed[0]) if failed else None)
        return outcomes

    def _ended(
        self, span: trace.Span, started: float, count: int, failed: int, error: str | None
    ) -> None:
        telemetry = self.telemetry
        attributes = self.send_attributes
        if failed < count:
            telemetry.sent.add(count - failed, attributes)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, f"{failed} of {count} messages not sent"))
            attributes = {**attributes, "error.type": error}
            telemetry.sent.add(failed, attributes)
        telemetry.operation_duration.record(time.perf_counter() - started, attributes)
        span.end()


class ConsumerTelemetry:
    """Spans and metrics of one consumer's driver calls."""

    def __init__(self, telemetry: Telemetry, driver: SubscriptionDriver, where: str) -> None:
        self.telemetry = telemetry
        self.tracer = telemetry.tracer
        attributes = destination_attributes(driver, where)
        destination = attributes.get("messaging.destination.name", "")
        self.receive_name = f"receive {destination}"
        self.receive_attributes = _operation(attributes, "receive", "receive")
        #: Per settlement (``ack``, ``nack``, ``release``, ``extend``, ``dead_letter``).
        self.settle_attributes = {
            name: _operation(attributes, name, "settle")
            for name in ("ack", "nack", "release", "extend", "dead_letter")
        }
        # The conventions name a span after its operation: "ack orders", "nack orders".
        self.settle_names = {name: f"{name} {destination}" for name in self.settle_attributes}
        self.live = LIVE.check
        LIVE.look(time.monotonic())

    def receive(
        self, call: Step[list[Delivery]], take_context: Callable[[list[Delivery]], None]
    ) -> Step[list[Delivery]]:
        """Run ``call`` (one driver receive, with its retries); a ``receive`` span
        for it when it returned messages or failed (empty polls make no span)."""
        started_ns = time.time_ns()
        started = time.perf_counter()
        try:
            got = yield from call
        except BaseException as error:
            span = self.tracer.start_span(
                self.receive_name, None, _CLIENT, self.receive_attributes, start_time=started_ns
            )
            span.record_exception(error)
            self._ended(span, self.receive_attributes, started, error_type(error))
            raise
        if got:
            take_context(got)
            attributes = _batch_attributes(self.receive_attributes, got)
            span = self.tracer.start_span(
                self.receive_name, None, _CLIENT, attributes, _links(got), started_ns
            )
            self.telemetry.consumed.add(len(got), self.receive_attributes)
            self._ended(span, self.receive_attributes, started, None)
        return got

    def settle(
        self, name: str, deliveries: Sequence[Delivery], call: Step[list[Any]]
    ) -> Step[list[Any]]:
        """Run ``call`` (one driver settlement of ``deliveries``, with its retries)
        in a ``settle`` span whose ``messaging.operation.name`` is ``name``."""
        base = self.settle_attributes[name]
        span = self.tracer.start_span(
            self.settle_names[name], None, _CLIENT, _batch_attributes(base, deliveries),
            _links(deliveries),
        )
        started = time.perf_counter()
        try:
            outcomes = yield from call
        except BaseException as error:
            span.record_exception(error)
            self._ended(span, base, started, error_type(error))
            raise
        failed = [outcome for outcome in outcomes if isinstance(outcome, QueueError)]
        if failed:
            self._ended(
                span, base, started, error_type(failed[0]),
                f"{len(failed)} of {len(outcomes)} entries failed",
            )
        else:
            self._ended(span, base, started, None)
        return outcomes

    def _ended(
        self,
        span: trace.Span,
        attributes: dict[str, AttributeValue],
        started: float,
        error: str | None,
        description: str | None = None,
    ) -> None:
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, description))
            attributes = {**attributes, "error.type": error}
        self.telemetry.operation_duration.record(time.perf_counter() - started, attributes)
        span.end()


def _batch_attributes(
    base: dict[str, AttributeValue], deliveries: Sequence[Delivery]
) -> dict[str, AttributeValue]:
    """``base`` plus the message id of a single message, or the batch's size."""
    if len(deliveries) == 1:
        return {**base, "messaging.message.id": deliveries[0].id}
    return {**base, "messaging.batch.message_count": len(deliveries)}


def _links(deliveries: Sequence[Delivery]) -> list[Link] | None:
    """Links to the creation context each message carried (none without an SDK:
    nobody would see them)."""
    if not _sdk_installed():
        return None
    links = []
    for delivery in deliveries:
        found = span_context_of(delivery.trace_context)
        if found is not None:
            links.append(Link(found))
    return links


def _carry(message: Message, span: trace.Span) -> None:
    """Replace the stand-ins in ``message`` with ``span``'s context, or record on
    ``span`` why the message goes without one."""
    if not isinstance(message, _Traced):
        return
    if message.dropped is not None:
        span.add_event(CONTEXT_DROPPED_EVENT, {"reason": message.dropped})
        return
    headers: dict[str, str] = {}
    _W3C.inject(headers, trace.set_span_in_context(span))
    if "traceparent" in headers:
        inject(message.carrier, headers, message.attributes)
    else:  # no valid span context after all (no SDK): never send the stand-ins
        for name in carrier_names(message.carrier):
            message.attributes.pop(name, None)


def _no_room(user: Mapping[str, str], carried: Mapping[str, str], limits: Limits) -> str | None:
    """Why ``carried`` does not fit beside the user's attributes, or None."""
    if len(user) + len(carried) > limits.max_attributes:
        return (
            f"{len(user)} attributes leave no room for the {len(carried)} that carry "
            f"trace context (at most {limits.max_attributes} attributes)"
        )
    for name, value in carried.items():
        if len(name.encode()) > limits.max_attribute_name_bytes:
            return (
                f"the attribute name {name!r} is longer than {limits.max_attribute_name_bytes} "
                "bytes, the limit for names"
            )
        if len(value.encode()) > limits.max_attribute_value_bytes:
            return (
                f"the {name} value is {len(value.encode())} bytes; attribute values are "
                f"limited to {limits.max_attribute_value_bytes} bytes"
            )
    return None


def _sdk_installed() -> bool:
    """Whether a real TracerProvider is set (the API alone makes only no-op spans)."""
    return not _from_the_api(trace.get_tracer_provider())


def _from_the_api(provider: object) -> bool:
    """Whether ``provider`` is one of the API's own (proxy or no-op) providers, which
    record nothing: every recording provider comes from elsewhere (an SDK)."""
    return type(provider).__module__.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


class _Liveness:
    """Whether an SDK is installed (a tracer or meter provider that records): with
    the API alone every span and instrument is a no-op, and the engine skips the
    calls altogether, so that installing the API costs (almost) nothing.

    A provider once set stays set, so a yes is kept; a no is looked at again at
    most once a second (looking costs an environment lookup per provider), and at
    once when a producer or consumer opens.

    The engine asks before every driver call, so the answer is :meth:`check`, a plain
    method the interpreter calls directly: calling the object itself (``__call__``,
    kept for the rare callers) costs about twice as much, a few percent of a message
    sent and received one at a time."""

    __slots__ = ("live", "next_look")

    def __init__(self) -> None:
        self.live = False
        self.next_look = 0.0

    def check(self) -> bool:
        if self.live:
            return True
        now = _monotonic()
        if now < self.next_look:
            return False
        return self.look(now)

    __call__ = check

    def look(self, now: float) -> bool:
        self.next_look = now + 1.0
        self.live = _sdk_installed() or not _from_the_api(metrics.get_meter_provider())
        return self.live


_monotonic = time.monotonic
LIVE = _Liveness()


def _operation(
    attributes: Mapping[str, AttributeValue], name: str, kind: str
) -> dict[str, AttributeValue]:
    return {**attributes, "messaging.operation.name": name, "messaging.operation.type": kind}
