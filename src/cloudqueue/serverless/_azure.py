"""Azure Functions with a Service Bus trigger: ``func.ServiceBusMessage`` in, raise to abandon."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from .._settlement import Settlement
from .._telemetry._carrier import extract
from ..driver import Delivery
from ..offload import Offload
from ..wire import SERVICEBUS_DEDUPLICATION_PROPERTY, own_key, user_attributes
from ._offload import payload_resolver
from ._tracing import SERVICEBUS_CARRIER, TraceSource
from ._trigger import HandlerFailed, MalformedEvent, Result, TriggerRunner

__all__ = ["HandlerFailed", "azure_functions", "delivery_from_servicebus"]

TRIGGER = "Azure Functions Service Bus trigger"
REFUSALS = {
    Settlement.EXTEND: "the Functions host renews the message lock itself "
    "(maxAutoLockRenewalDuration in host.json); it cannot be extended from the function",
    Settlement.DEAD_LETTER: "the trigger's ServiceBusMessage cannot be dead-lettered without the SDK "
    "client; raise and the message moves to the dead-letter queue after MaxDeliveryCount",
}
NACK_DELAY = (
    "the host can only abandon a message (redelivered at once); a delay needs the SDK. "
    "nack() without a delay abandons it"
)


def delivery_from_servicebus(message: Any) -> Delivery:
    """A Delivery from an ``azure.functions.ServiceBusMessage`` (read by duck typing, so
    this module does not import ``azure.functions``)."""
    get_body = getattr(message, "get_body", None)
    if get_body is None:
        raise MalformedEvent(f"expected an azure.functions.ServiceBusMessage, not {type(message).__name__}")
    body = get_body()
    if isinstance(body, str):
        body = body.encode("utf-8")
    properties = getattr(message, "application_properties", None) or getattr(
        message, "user_properties", None
    ) or {}
    count = getattr(message, "delivery_count", None)
    enqueued = getattr(message, "enqueued_time_utc", None)
    if isinstance(enqueued, datetime.datetime) and enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=datetime.UTC)
    # Application properties may be ints, floats, bools... the portable type is str.
    texts = {str(name): str(value) for name, value in properties.items()}
    deduplication_id = texts.get(SERVICEBUS_DEDUPLICATION_PROPERTY)
    attributes, trace_context = extract(SERVICEBUS_CARRIER, user_attributes(texts))
    return Delivery(
        token=getattr(message, "lock_token", None),
        id=str(getattr(message, "message_id", "") or ""),
        body=bytes(body or b""),
        attributes=attributes,
        # The host (a .NET SDK) counts from 1 on first delivery.
        delivery_attempt=int(count) if count is not None else None,
        ordering_key=own_key(getattr(message, "session_id", None)),
        enqueued_at=enqueued if isinstance(enqueued, datetime.datetime) else None,
        native=message,
        deduplication_id=deduplication_id,
        trace_context=trace_context,
    )


def _raise_failures(results: list[Result]) -> None:
    failed = [result for result in results if not result.ok]
    if failed:
        error = HandlerFailed([result.delivery.id for result in failed])
        cause = next((result.error for result in failed if result.error is not None), None)
        raise error from cause


def _trace_source(destination: str | None, subscription: str | None) -> TraceSource:
    described = {}
    if destination is not None:
        described["messaging.destination.name"] = destination
    if subscription is not None:
        described["messaging.destination.subscription.name"] = subscription
    return TraceSource("servicebus", lambda delivery: dict(described))


def azure_functions(
    handler: Callable[..., Any],
    *,
    concurrency: int = 1,
    destination: str | None = None,
    subscription: str | None = None,
    offload: Offload | None = None,
) -> Callable[..., Any]:
    """A function for ``@app.service_bus_queue_trigger(arg_name="msg", ...)`` (or a topic
    trigger) that runs ``handler`` on the ``ServiceBusMessage``, or on each of a list of
    them (``cardinality="many"``).

    A normal return completes the message(s); a failure raises :class:`HandlerFailed` so
    the host abandons them. With ``cardinality="many"`` the host settles the batch as a
    whole: one failure abandons every message of it (handlers must be idempotent).
    Messages of a session run in order and stop at the first failure. The returned
    function is a coroutine function when ``handler`` is one.

    ``destination`` (and ``subscription``) name the queue or topic on the process
    spans when OpenTelemetry is on: the trigger's message does not say where it came from.

    ``offload``: a message carrying a claim check (``cloudqueue.payload``) gets its
    payload from this location before the handler runs; only pointers inside it are
    fetched. A payload that cannot be read (or any pointer, without ``offload``) makes
    ``body`` raise ``PayloadUnavailable``: the handler fails and the message is
    abandoned (with ``cardinality="many"``, the batch). Payloads are kept
    (``delete_after_ack`` is refused: the host completes the message after the function
    returns, and the function never learns whether it did; expire them with a
    lifecycle rule, see docs/large-messages.md).
    """
    payloads = payload_resolver(
        offload, "azure_functions", aws_format=False,
        settled_by="the Functions host completes the message",
    )
    runner = TriggerRunner(
        handler, TRIGGER, REFUSALS, NACK_DELAY, _trace_source(destination, subscription),
        concurrency, payloads=payloads,
    )

    def deliveries(msg: Any) -> tuple[list[Delivery], bool]:
        batch = [delivery_from_servicebus(one) for one in (msg if isinstance(msg, list) else [msg])]
        return batch, any(delivery.ordering_key is not None for delivery in batch)

    if runner.is_async:

        async def async_function(msg: Any) -> None:
            batch, ordered = deliveries(msg)
            _raise_failures(await (runner.ordered(batch) if ordered else runner.gather(batch)))

        return async_function

    def function(msg: Any) -> None:
        batch, ordered = deliveries(msg)
        _raise_failures(runner.run_batch(batch, in_order=ordered))

    # No functools.wraps: the host binds the trigger by this function's parameter name.
    return function
