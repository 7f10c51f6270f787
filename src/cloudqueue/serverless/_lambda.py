"""AWS Lambda with an SQS or SNS trigger: records in, a partial-batch-failure response
(SQS) or a raise (SNS) out. SQS records, SNS envelopes in them and SNS records all end
in one Delivery builder, so a message decodes the same whichever way it came."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._settlement import Settlement
from .._telemetry._carrier import extract
from ..driver import Delivery
from ..offload import Offload
from ..wire import (
    MESSAGE_ID_ATTRIBUTE,
    SnsNotification,
    WireDecodeError,
    decode_sqs_body,
    own_key,
    sns_notification,
    sqs_attribute_text,
    user_attributes,
)
from . import _sns as sns
from ._azure import HandlerFailed
from ._offload import payload_resolver
from ._tracing import SQS_CARRIER, Headers, TraceSource, traceparent_from_xray
from ._trigger import MalformedEvent, TriggerRunner, log

__all__ = ["aws_lambda"]

TRIGGER = "AWS Lambda SQS trigger"
#: ``eventSource`` of every record of an SQS trigger event.
SQS_SOURCE = "aws:sqs"
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


@dataclass(frozen=True, slots=True)
class Travelled:
    """One message as the SQS codec put it on the wire, wherever Lambda found it (an SQS
    record, an SNS envelope in one, an SNS record): body text and portable attributes,
    markers kept. Every source ends in :func:`_delivery`, so decoding is written once."""

    #: The transport's id: reported when the sender set no ``cloudqueue.id``.
    transport_id: str
    text: str
    attributes: dict[str, str]
    enqueued_at: datetime.datetime | None

    @property
    def reported_id(self) -> str:
        return self.attributes.get(MESSAGE_ID_ATTRIBUTE) or self.transport_id

    @classmethod
    def from_notification(cls, notification: SnsNotification) -> Travelled:
        return cls(notification.message_id, notification.message, notification.attributes,
                   notification.timestamp)


@dataclass(frozen=True, slots=True)
class Item:
    """One record: the id the trigger knows it by, and its Delivery or why it cannot be read."""

    record_id: str
    delivery: Delivery | None
    error: WireDecodeError | None = None
    #: From a FIFO queue (its records run in order).
    fifo: bool = False


def _delivery(travelled: Travelled, native: dict[str, Any], *, token: object = None,
              attempt: int | None = None, ordering_key: str | None = None,
              deduplication_id: str | None = None) -> Delivery:
    """Raises WireDecodeError for a body its marker does not describe."""
    payload = decode_sqs_body(travelled.text, travelled.attributes)
    own, trace_context = extract(SQS_CARRIER, user_attributes(travelled.attributes))
    return Delivery(
        token=token,
        id=travelled.reported_id,
        body=payload,
        attributes=own,
        delivery_attempt=attempt,
        ordering_key=ordering_key,
        enqueued_at=travelled.enqueued_at,
        native=native,
        deduplication_id=deduplication_id,
        trace_context=trace_context,
    )


def _sqs_travelled(
    record: dict[str, Any], where: str, message_id: str, sent: datetime.datetime | None
) -> Travelled:
    """The record's message, unwrapped when its body is an SNS envelope (raw delivery off).
    Raises WireDecodeError for an attribute or envelope that cannot be read."""
    body = _text(record, "body", where)
    raw_attributes = record.get("messageAttributes") or {}
    if not isinstance(raw_attributes, dict):
        raise MalformedEvent(f"{where}: messageAttributes must be an object")
    attributes: dict[str, str] = {}
    for name, typed in raw_attributes.items():
        if not isinstance(typed, dict) or not isinstance(typed.get("dataType"), str):
            raise MalformedEvent(f"{where}: message attribute {name!r} has no dataType")
        attributes[name] = sqs_attribute_text(
            typed["dataType"], typed.get("stringValue"), typed.get("binaryValue")
        )
    envelope = sns_notification(body)
    if envelope is not None:
        return Travelled.from_notification(envelope)
    return Travelled(message_id, body, attributes, sent)


def _sqs_item(record: object, index: int) -> Item:
    where = f"SQS event record {index}"
    if not isinstance(record, dict):
        raise MalformedEvent(f"{where} is not an object")
    source = record.get("eventSource")
    if source != SQS_SOURCE:
        raise MalformedEvent(f"{where}: eventSource is {source!r}, expected {SQS_SOURCE!r}")
    message_id = _text(record, "messageId", where)
    system = record.get("attributes") or {}
    if not isinstance(system, dict):
        raise MalformedEvent(f"{where}: attributes must be an object")
    try:
        attempt = int(system.get("ApproximateReceiveCount", "1"))
        sent = system.get("SentTimestamp")
        enqueued_at = (
            None if sent is None
            else datetime.datetime.fromtimestamp(int(sent) / 1000.0, tz=datetime.UTC)
        )
    except (TypeError, ValueError):
        raise MalformedEvent(f"{where}: ApproximateReceiveCount and SentTimestamp must be integers") from None
    arn = record.get("eventSourceARN")
    fifo = (isinstance(arn, str) and arn.endswith(".fifo")) or "MessageGroupId" in system
    try:
        travelled = _sqs_travelled(record, where, message_id, enqueued_at)
        delivery = _delivery(
            travelled, record, token=record.get("receiptHandle"), attempt=attempt,
            ordering_key=own_key(system.get("MessageGroupId")),
            deduplication_id=own_key(system.get("MessageDeduplicationId")),
        )
    except WireDecodeError as error:  # a corrupt message, not a bad event: reported failed
        log.error("%s: record %s cannot be decoded: %s", TRIGGER, message_id, error)
        return Item(message_id, None, error, fifo)
    return Item(message_id, delivery, None, fifo)


def _sns_item(record: object, index: int) -> Item:
    travelled = Travelled.from_notification(sns.notification_of(record, index))
    assert isinstance(record, dict)  # notification_of checked it
    try:
        return Item(travelled.reported_id, _delivery(travelled, record))
    except WireDecodeError as error:
        log.error("%s: record %s cannot be decoded: %s", sns.TRIGGER, travelled.reported_id, error)
        return Item(travelled.reported_id, None, error)


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


def _kind_of(event: object) -> str:
    """``SQS_SOURCE`` or ``sns.SOURCE``: which trigger sent ``event`` (all records must agree)."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise MalformedEvent("not an SQS or SNS event: expected an object with a 'Records' list")
    kinds: list[object] = []
    for index, record in enumerate(event["Records"]):
        if not isinstance(record, dict):
            raise MalformedEvent(f"event record {index} is not an object")
        # SQS records spell their keys in camelCase, SNS records in PascalCase.
        kind = record.get("eventSource", record.get("EventSource"))
        if kind not in (SQS_SOURCE, sns.SOURCE):
            raise MalformedEvent(
                f"event record {index}: eventSource (SQS) or EventSource (SNS) is {kind!r}, "
                f"expected {SQS_SOURCE!r} or {sns.SOURCE!r}"
            )
        if kinds and kind != kinds[0]:
            raise MalformedEvent(
                f"event record {index} comes from {kind!r} but record 0 from {kinds[0]!r}: "
                "an event comes from one trigger"
            )
        kinds.append(kind)
    return str(kinds[0]) if kinds else SQS_SOURCE


def aws_lambda(
    handler: Callable[..., Any], *, concurrency: int = 1, offload: Offload | None = None
) -> Callable[[Any, Any], dict[str, Any] | None]:
    """A Lambda function handler ``lambda_handler(event, context)`` running ``handler``
    on each record of an SQS event (a trigger with ``ReportBatchItemFailures``) or of an
    SNS event.

    Bodies and attributes are decoded exactly as the SQS and SNS providers send them; an
    SQS body that is an SNS notification envelope (a subscription without raw delivery)
    is unwrapped. A message's id is the ``cloudqueue.id`` it carries (what ``send``
    returned), else the SQS message id or the SNS MessageId. A coroutine handler runs the
    records concurrently; a plain one runs them one at a time, or on ``concurrency``
    threads.

    SQS: ``delivery_attempt`` is ``ApproximateReceiveCount``; the response lists failed
    records by their SQS ``messageId``. On a FIFO queue records run in order and the
    first failure stops the batch: it and every later record are reported failed. A
    record whose body cannot be decoded is reported failed.

    SNS: ``delivery_attempt`` is None (the event does not say); every record runs, and
    if any failed (or cannot be decoded) :class:`HandlerFailed` is raised naming them, so
    Lambda retries the event; nothing is returned.

    An event of neither shape, or mixing both, raises :class:`MalformedEvent`, failing the
    whole invocation (so nothing is lost).

    ``offload``: records carrying a claim check (ours, or the AWS extended clients' S3
    pointer) get their payload from this location before the handler runs; only pointers
    inside it are fetched. A payload that cannot be read (or any pointer, without
    ``offload``) makes the record's ``body`` raise ``PayloadUnavailable``: the handler
    fails and the record is reported failed. Payloads are kept (``delete_after_ack`` is
    refused: Lambda deletes the records after the function returns, and the function
    never learns whether it did; expire them with a lifecycle rule, see
    docs/large-messages.md).
    """
    # SNS and SQS carry the AWS extended clients' pointer too.
    payloads = payload_resolver(
        offload, "aws_lambda", aws_format=True, settled_by="Lambda settles the records"
    )
    sqs_runner = TriggerRunner(
        handler, TRIGGER, REFUSALS, NACK_DELAY, TRACE, concurrency, payloads=payloads
    )
    sns_runner = TriggerRunner(
        handler, sns.TRIGGER, sns.REFUSALS, sns.NACK_DELAY, sns.TRACE, concurrency,
        payloads=payloads,
    )

    def lambda_handler(event: Any, context: Any) -> dict[str, Any] | None:
        if _kind_of(event) == sns.SOURCE:
            sns_items = [_sns_item(r, i) for i, r in enumerate(event["Records"])]
            _run_sns(sns_runner, sns_items)
            return None
        items = [_sqs_item(record, index) for index, record in enumerate(event["Records"])]
        return {"batchItemFailures": [
            {"itemIdentifier": record_id} for record_id in _run_sqs(sqs_runner, items)
        ]}

    return lambda_handler


def _is_fifo(items: list[Item]) -> bool:
    """A FIFO queue's ARN ends in ``.fifo``; a record with a group id says so too."""
    return any(item.fifo for item in items)


def _run_sqs(runner: TriggerRunner, items: list[Item]) -> list[str]:
    """The SQS message ids of the records to report failed."""
    if _is_fifo(items):
        # Run up to the first record we cannot read; it and all after it fail.
        cut = next((i for i, item in enumerate(items) if item.delivery is None), len(items))
        results = runner.run_batch(_readable(items[:cut]), in_order=True)
        succeeded = [result.ok for result in results] + [False] * (len(items) - cut)
    else:
        outcome = {id(r.delivery): r.ok for r in runner.run_batch(_readable(items), in_order=False)}
        succeeded = [item.delivery is not None and outcome[id(item.delivery)] for item in items]
    return [item.record_id for item, ok in zip(items, succeeded, strict=True) if not ok]


def _run_sns(runner: TriggerRunner, items: list[Item]) -> None:
    results = runner.run_batch(_readable(items), in_order=False)
    failed = [result for result in results if not result.ok]
    ids = [result.delivery.id for result in failed] + [i.record_id for i in items if i.delivery is None]
    if ids:
        errors = [result.error for result in failed] + [i.error for i in items if i.delivery is None]
        raise HandlerFailed(ids) from next((error for error in errors if error is not None), None)


def _readable(items: list[Item]) -> list[Delivery]:
    return [item.delivery for item in items if item.delivery is not None]
