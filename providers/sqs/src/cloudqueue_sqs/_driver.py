"""The SQS topic and subscription drivers: one batch-shaped call each, translated.

The asyncio twins are the driver interface's defaults (the blocking call in a worker
thread), not aiobotocore: measured with bench/bench_sqs.py against LocalStack (2,000
messages sent, received and acked, 2 cores), ``cloudqueue.aio`` on worker threads ran at
737 msg/s and a hand-written aiobotocore loop batching by 10 at 792 msg/s (0.93x). A
second, native asyncio driver would win at most those 7% and double the code to keep
correct, so it has not earned its place.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cloudqueue.driver import (
    W3C_CARRIER,
    BatchErrors,
    Capabilities,
    Delivery,
    Limits,
    Message,
    SubscriptionDriver,
    TopicDriver,
)
from cloudqueue.errors import FailedPrecondition, QueueError
from cloudqueue.wire import DEAD_LETTER_REASON, MESSAGE_ID_ATTRIBUTE, RESERVED_PREFIX

from . import _codec
from ._errors import entry_error
from ._queues import Queue, QueueRegistry, dead_letter_twin, sqs_call, visibility_seconds
from ._tracing import telemetry_attributes

__all__ = [
    "LIMITS", "Content", "Receipt", "SqsSubscription", "SqsTopic", "capabilities_for",
    "failures",
]

_MIB = 1024 * 1024
#: SQS allows 10 message attributes. One goes to cloudqueue's body-encoding marker and one
#: stays free for the reason a dead-lettered copy adds, so 8 are left. Trace context
#: (``traceparent``, and ``tracestate`` when set) counts against these 8: when the user's
#: attributes leave no room, the portable layer sends the message without it (and says so
#: on the send span), as the contrib boto3 instrumentation skips injection at 10.
USER_ATTRIBUTES = 8

LIMITS = Limits(
    max_message_bytes=_MIB,
    max_send_batch=10,
    max_send_batch_bytes=_MIB,
    max_receive_batch=10,
    max_settle_batch=10,
    max_attributes=USER_ATTRIBUTES,
    max_attribute_name_bytes=256,
    max_attribute_value_bytes=_MIB,
    # Letters, digits, '_', '-', '.'; no leading, trailing or repeated period; and no
    # "AWS." / "Amazon." prefix in any casing (the reserved prefixes below name them too).
    attribute_name_pattern=r"(?i:(?!aws\.|amazon\.))[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*",
    reserved_attribute_prefixes=("AWS.", "Amazon.", RESERVED_PREFIX),
    max_delay=900.0,
    max_nack_delay=43_200.0,
    max_lease=43_200.0,
    # A message stays invisible at most 12 hours after it was received, however renewed.
    max_lease_total=43_200.0,
    max_receive_wait=20.0,
    max_key_length=128,
    # traceparent / tracestate under their own names: the contrib boto3 instrumentation's.
    trace_carrier=W3C_CARRIER,
)
# FIFO queues take no per-message delay; the group and deduplication ids the codec makes
# up start with the reserved prefix, so a user's may not (see _codec).
_FIFO_LIMITS = dataclasses.replace(
    LIMITS, max_delay=None, reserved_key_prefixes=(_codec.MADE_UP_PREFIX,)
)

STANDARD = Capabilities(
    limits=LIMITS, ordering=False, deduplication=False, delayed_delivery=True,
    dead_letter=True, delivery_attempt=True, nack_delay=True, lease_extension=True,
    fan_out=False, implicit_create=False, durable=True,
)
FIFO = Capabilities(
    limits=_FIFO_LIMITS, ordering=True, deduplication=True, delayed_delivery=False,
    dead_letter=True, delivery_attempt=True, nack_delay=True, lease_extension=True,
    fan_out=False, implicit_create=False, durable=True,
)


def capabilities_for(fifo: bool) -> Capabilities:
    return FIFO if fifo else STANDARD


@dataclasses.dataclass(frozen=True, slots=True)
class Content:
    """A received message's id, body text and attributes (markers kept), before decoding."""

    native_id: str
    text: str
    attributes: dict[str, str]
    enqueued_at: datetime.datetime | None


class Receipt:
    """The settlement token of one delivery: its receipt handle and the message."""

    __slots__ = ("handle", "message")

    def __init__(self, handle: str, message: dict[str, Any]) -> None:
        self.handle = handle
        self.message = message


def failures(what: str, answer: dict[str, Any], count: int) -> list[QueueError | None] | None:
    failed = answer.get("Failed") or ()
    if not failed:
        return None
    errors: list[QueueError | None] = [None] * count
    for failure in failed:
        errors[int(failure["Id"])] = entry_error(what, failure)
    return errors


class SqsTopic(TopicDriver):
    def __init__(self, queue: Queue, *, owned: QueueRegistry | None = None) -> None:
        self._queue = queue
        # The registry made for the user's SqsSdk: closing it closes the clients built
        # for this driver (never the user's own). None: the provider's shared one.
        self._owned = owned
        self.capabilities_ = capabilities_for(queue.fifo)

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_

    def measure(self, message: Message) -> int:
        return _codec.measure(message)

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        queue = self._queue
        url = queue.url()
        content_based = queue.fifo and queue.content_based_dedup
        results: list[str | QueueError] = [
            FailedPrecondition("SQS answered for no entry")
        ] * len(messages)
        entries = []
        for index, message in enumerate(messages):
            entries.append(
                _codec.encode_entry(str(index), message, fifo=queue.fifo,
                                    content_based_dedup=content_based)
            )
        if not entries:
            return results
        with sqs_call(f"sending to SQS queue {queue.name!r}"):
            answer = queue.client.send_message_batch(QueueUrl=url, Entries=entries)
        for success in answer.get("Successful") or ():
            results[int(success["Id"])] = str(success["MessageId"])
        for failure in answer.get("Failed") or ():
            results[int(failure["Id"])] = entry_error("sending", failure)
        return results

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return telemetry_attributes(self._queue)

    def native_objects(self) -> Iterable[object]:
        return (self._queue.client,)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __repr__(self) -> str:
        return f"<SqsTopic {self._queue.name}>"


class SqsSubscription(SubscriptionDriver):
    def __init__(self, queue: Queue, *, owned: QueueRegistry | None = None) -> None:
        self._queue = queue
        self._owned = owned  # as SqsTopic's
        self.capabilities_ = capabilities_for(queue.fifo)
        self._dead_letters: Queue | None = None

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_

    # -- receiving --------------------------------------------------------------

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        # A FIFO queue may return several messages of one group, in order: the
        # portable layer hands them out one at a time.
        queue = self._queue
        url = queue.url()
        lease = queue.visibility_timeout
        started = time.monotonic()
        with sqs_call(f"receiving from SQS queue {queue.name!r}"):
            answer = queue.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max_messages,
                # Whole seconds; a hair over a second is not worth a second more.
                WaitTimeSeconds=min(20, visibility_seconds(wait - 0.05)),
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount", "SentTimestamp", "MessageGroupId",
                    "MessageDeduplicationId",
                    # Where SQS moved a dead letter from: read by the provider's
                    # dead_letter_facts (cloudqueue.ops).
                    "DeadLetterQueueSourceArn",
                ],
                MessageAttributeNames=["All"],
            )
        return [self._delivery(raw, started + lease) for raw in answer.get("Messages") or ()]

    def _content(self, raw: dict[str, Any]) -> Content:
        """What the SQS message says: overridden where a body may wrap another (SNS)."""
        system = raw.get("Attributes") or {}
        return Content(
            native_id=str(raw["MessageId"]),
            text=str(raw.get("Body", "")),
            attributes=_codec.decode_attributes(raw.get("MessageAttributes")),
            enqueued_at=_codec.enqueued_at(system),
        )

    def _delivery(self, raw: dict[str, Any], lease_deadline: float) -> Delivery:
        system = raw.get("Attributes") or {}
        content = self._content(raw)
        message_id = _codec.message_id(content.native_id, content.attributes)
        body, attributes = _codec.decode_body(content.text, content.attributes)
        return Delivery(
            token=Receipt(str(raw["ReceiptHandle"]), raw),
            id=message_id,
            body=body,
            attributes=attributes,
            delivery_attempt=int(system.get("ApproximateReceiveCount", "1")),
            ordering_key=_codec.ordering_key(system),
            enqueued_at=content.enqueued_at,
            lease_deadline=lease_deadline,
            native=raw,
            deduplication_id=_codec.deduplication_id(system),
        )

    # -- settling ---------------------------------------------------------------

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        receipts: list[Receipt] = list(tokens)  # type: ignore[arg-type]
        return self._delete(receipts, "acknowledging")

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        pairs: list[tuple[Receipt, float]] = list(entries)  # type: ignore[arg-type]
        return self._change_visibility(pairs, "nacking")

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        receipts: list[Receipt] = list(tokens)  # type: ignore[arg-type]
        return self._change_visibility([(r, 0.0) for r in receipts], "giving back")

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        pairs: list[tuple[Receipt, float]] = list(entries)  # type: ignore[arg-type]
        started = time.monotonic()
        errors = self._change_visibility(pairs, "extending leases")
        return [
            error if errors is not None and (error := errors[index]) is not None
            else started + visibility_seconds(seconds)
            for index, (_, seconds) in enumerate(pairs)
        ]

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        pairs: list[tuple[Receipt, str]] = list(entries)  # type: ignore[arg-type]
        queue = self._queue
        target_name = queue.redrive_target()
        if target_name is None:
            missing = FailedPrecondition(
                f"SQS queue {queue.name!r} has no redrive policy, so there is nowhere to "
                f"dead-letter to; declare it with dead_letter_after=N (its dead letters then "
                f"go to {dead_letter_twin(queue.name)!r})"
            )
            return [missing] * len(pairs)
        target = self._dead_letters
        if target is None or target.name != target_name:
            target = self._dead_letters = Queue(target_name, queue.client_of)
        copies = [_dead_letter_copy(str(index), receipt, reason, queue.fifo)
                  for index, (receipt, reason) in enumerate(pairs)]
        with sqs_call(f"dead-lettering to SQS queue {target_name!r}"):
            answer = queue.client.send_message_batch(QueueUrl=target.url(), Entries=copies)
        errors: list[QueueError | None] = list(
            failures("dead-lettering", answer, len(pairs)) or [None] * len(pairs)
        )
        copied = [r for (r, _), error in zip(pairs, errors, strict=True) if error is None]
        if copied:
            deleted = self._delete(copied, "deleting dead-lettered messages")
            if deleted is not None:
                positions = [index for index, error in enumerate(errors) if error is None]
                for index, error in zip(positions, deleted, strict=True):
                    errors[index] = error
        return errors if any(errors) else None

    # -- helpers ----------------------------------------------------------------

    def _delete(self, receipts: Sequence[Receipt], what: str) -> BatchErrors:
        queue = self._queue
        entries = [{"Id": str(i), "ReceiptHandle": r.handle} for i, r in enumerate(receipts)]
        with sqs_call(f"{what} on SQS queue {queue.name!r}"):
            answer = queue.client.delete_message_batch(QueueUrl=queue.url(), Entries=entries)
        return failures(what, answer, len(entries))

    def _change_visibility(self, pairs: Sequence[tuple[Receipt, float]], what: str) -> BatchErrors:
        queue = self._queue
        entries = [
            {"Id": str(i), "ReceiptHandle": r.handle, "VisibilityTimeout": visibility_seconds(s)}
            for i, (r, s) in enumerate(pairs)
        ]
        with sqs_call(f"{what} on SQS queue {queue.name!r}"):
            answer = queue.client.change_message_visibility_batch(
                QueueUrl=queue.url(), Entries=entries
            )
        return failures(what, answer, len(entries))

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return telemetry_attributes(self._queue)

    def native_objects(self) -> Iterable[object]:
        return (self._queue.client,)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __repr__(self) -> str:
        return f"<SqsSubscription {self._queue.name}>"


#: SQS's limit of message attributes per message.
_SQS_MAX_ATTRIBUTES = 10


def _dead_letter_copy(entry_id: str, receipt: Receipt, reason: str, fifo: bool) -> dict[str, Any]:
    """The original message as received (body and attributes untouched, except the sender's
    id of :data:`MESSAGE_ID_ATTRIBUTE`, which becomes the original-id marker), plus the reason
    and, where SQS's 10 attributes leave room, markers with the original message id and
    receive count (the copy gets a new id and a count of its own; ``cloudqueue.ops`` reads
    the markers to put provenance on a redriven message). In order of worth: the reason
    has its reserved slot, then the id, then the count."""
    raw = receipt.message
    kept = ("DataType", "StringValue", "BinaryValue")  # not the reserved list fields
    attributes = {
        name: {key: value[key] for key in kept if key in value}
        for name, value in (raw.get("MessageAttributes") or {}).items()
    }
    system = raw.get("Attributes") or {}
    # The copy is a message of its own with an id of its own, as on a plain SQS queue;
    # the id its sender returned (SNS) becomes its original id. Two copies of one
    # message (dead-lettered again after its lease ran out) stay two dead letters.
    sender_id = attributes.pop(MESSAGE_ID_ATTRIBUTE, {}).get("StringValue")
    extra = [
        (DEAD_LETTER_REASON, reason),  # the slot kept free for it (see USER_ATTRIBUTES)
        (_codec.ORIGINAL_ID_MARKER, sender_id or str(raw["MessageId"])),
        (_codec.RECEIVE_COUNT_MARKER, str(system.get("ApproximateReceiveCount") or "")),
    ]
    for name, value in extra:
        if len(attributes) < _SQS_MAX_ATTRIBUTES and (value or name == DEAD_LETTER_REASON):
            attributes[name] = _codec.encode_attribute(value)
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": raw.get("Body", "")}
    if attributes:
        entry["MessageAttributes"] = attributes
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId") or _codec.made_up(str(raw["MessageId"]))
        # The message id makes a retried dead-lettering a duplicate SQS drops; made up,
        # so the copy reports no deduplication id (the user's would drop a later
        # dead letter sent with the same id within 5 minutes).
        entry["MessageDeduplicationId"] = _codec.made_up(str(raw["MessageId"]))
    return entry
