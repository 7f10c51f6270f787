"""AWS Lambda with an SQS trigger: records in, a partial-batch-failure response out."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._settlement import Settlement
from .._telemetry._carrier import extract
from ..driver import Delivery
from ..wire import WireDecodeError, decode_sqs_body, own_key, sqs_attribute_text, user_attributes
from ._tracing import SQS_CARRIER, Headers, TraceSource, traceparent_from_xray
from ._trigger import MalformedEvent, TriggerRunner, log

__all__ = ["Undecodable", "aws_lambda", "deliveries_from_sqs_event"]

TRIGGER = "AWS Lambda SQS trigger"
REFUSALS = {
    Settlement.EXTEND: "a record's visibility timeout cannot be extended from the trigger; "
    "set the queue's visibility timeout above the function timeout",
    Settlement.DEAD_LETTER: "records cannot be dead-lettered from the trigger; give the queue a "
    "redrive policy (maxReceiveCount) and a failing record moves there by itself",
}
NACK_DELAY = (
    "a per-record nack delay needs the SQS API; nack() reports the record as failed and "
    "it returns when the queue's visibility timeout ends"
)


def _text(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise MalformedEvent(f"{where}: {key!r} must be a string, not {type(value).__name__}")
    return value


def _record_to_delivery(record: object, index: int) -> Delivery | WireDecodeError:
    where = f"SQS event record {index}"
    if not isinstance(record, dict):
        raise MalformedEvent(f"{where} is not an object")
    source = record.get("eventSource")
    if source != "aws:sqs":
        raise MalformedEvent(f"{where}: eventSource is {source!r}, expected 'aws:sqs'")
    message_id = _text(record, "messageId", where)
    body = _text(record, "body", where)
    system = record.get("attributes") or {}
    raw_attributes = record.get("messageAttributes") or {}
    if not isinstance(system, dict) or not isinstance(raw_attributes, dict):
        raise MalformedEvent(f"{where}: attributes and messageAttributes must be objects")
    attributes: dict[str, str] = {}
    for name, typed in raw_attributes.items():
        if not isinstance(typed, dict) or not isinstance(typed.get("dataType"), str):
            raise MalformedEvent(f"{where}: message attribute {name!r} has no dataType")
        try:
            attributes[name] = sqs_attribute_text(
                typed["dataType"], typed.get("stringValue"), typed.get("binaryValue")
            )
        except WireDecodeError as error:
            return error  # reported as this record's failure, like a corrupt body
    try:
        attempt = int(system.get("ApproximateReceiveCount", "1"))
        sent = system.get("SentTimestamp")
        enqueued_at = (
            None if sent is None
            else datetime.datetime.fromtimestamp(int(sent) / 1000.0, tz=datetime.UTC)
        )
    except (TypeError, ValueError):
        raise MalformedEvent(f"{where}: ApproximateReceiveCount and SentTimestamp must be integers") from None
    try:
        payload = decode_sqs_body(body, attributes)
    except WireDecodeError as error:
        return error
    own, trace_context = extract(SQS_CARRIER, user_attributes(attributes))
    return Delivery(
        token=record.get("receiptHandle"),
        id=message_id,
        body=payload,
        attributes=own,
        delivery_attempt=attempt,
        ordering_key=own_key(system.get("MessageGroupId")),
        enqueued_at=enqueued_at,
        native=record,
        deduplication_id=own_key(system.get("MessageDeduplicationId")),
        trace_context=trace_context,
    )


def _describe(delivery: Delivery) -> dict[str, str]:
    """The queue's name, from the record's ``eventSourceARN`` (``arn:aws:sqs:region:account:name``)."""
    record = delivery.native
    arn = record.get("eventSourceARN") if isinstance(record, dict) else None
    if isinstance(arn, str) and arn.count(":") >= 5:
        return {"messaging.destination.name": arn.rsplit(":", 1)[1]}
    return {}


def _xray_link(delivery: Delivery) -> list[Headers]:
    """The record's ``AWSTraceHeader`` (set by SQS when the sender traced with X-Ray),
    as W3C headers. Linked, never the parent: the Lambda conventions link the
    sender's trace, which X-Ray also shows as its own segment."""
    record = delivery.native
    system = record.get("attributes") if isinstance(record, dict) else None
    traceparent = traceparent_from_xray(system.get("AWSTraceHeader")) if isinstance(system, dict) else None
    return [{"traceparent": traceparent}] if traceparent is not None else []


TRACE = TraceSource("aws_sqs", _describe, _xray_link)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record whose body carries a cloudqueue encoding marker but cannot be decoded."""

    message_id: str
    error: WireDecodeError


def deliveries_from_sqs_event(event: object) -> tuple[list[Delivery | Undecodable], bool]:
    """One item per record, in order, and whether the queue is FIFO. Raises
    :class:`MalformedEvent` for anything not matching the documented event shape."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise MalformedEvent("not an SQS event: expected an object with a 'Records' list")
    items: list[Delivery | Undecodable] = []
    fifo = False
    for index, record in enumerate(event["Records"]):
        outcome = _record_to_delivery(record, index)
        arn = record.get("eventSourceARN", "")
        fifo = fifo or (isinstance(arn, str) and arn.endswith(".fifo"))
        if isinstance(outcome, WireDecodeError):
            log.error("%s: record %s cannot be decoded: %s", TRIGGER, record["messageId"], outcome)
            items.append(Undecodable(record["messageId"], outcome))
        else:
            fifo = fifo or outcome.ordering_key is not None
            items.append(outcome)
    return items, fifo


def aws_lambda(handler: Callable[..., Any], *, concurrency: int = 1) -> Callable[[Any, Any], dict[str, Any]]:
    """A Lambda function handler ``lambda_handler(event, context)`` running ``handler``
    on each record of an SQS event, for a trigger with ``ReportBatchItemFailures``.

    Bodies and attributes are decoded exactly as the SQS provider decodes them;
    ``delivery_attempt`` is ``ApproximateReceiveCount``. A coroutine handler runs the
    records concurrently; a plain one runs them one at a time, or on ``concurrency``
    threads. On a FIFO queue records run in order and the first failure stops the
    batch: it and every later record are reported failed. A record whose body cannot
    be decoded is reported failed. An event that is not an SQS event raises
    :class:`MalformedEvent`, failing the whole invocation (so nothing is lost).
    """
    runner = TriggerRunner(handler, TRIGGER, REFUSALS, NACK_DELAY, TRACE, concurrency)

    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        items, fifo = deliveries_from_sqs_event(event)
        if fifo:
            # Run up to the first record we cannot read; it and all after it fail.
            cut = next((i for i, item in enumerate(items) if isinstance(item, Undecodable)), len(items))
            runnable = [item for item in items[:cut] if isinstance(item, Delivery)]
            results = runner.run_batch(runnable, in_order=True)
            failed = [result.delivery.id for result in results if not result.ok]
            failed += [_id_of(item) for item in items[cut:]]
        else:
            runnable = [item for item in items if isinstance(item, Delivery)]
            outcome = {id(r.delivery): r.ok for r in runner.run_batch(runnable, in_order=False)}
            failed = [
                _id_of(item) for item in items
                if isinstance(item, Undecodable) or not outcome[id(item)]
            ]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    return lambda_handler


def _id_of(item: Delivery | Undecodable) -> str:
    return item.id if isinstance(item, Delivery) else item.message_id
