"""What a Lambda SNS trigger record is and says: its notification, what the trigger
cannot do, and what its process spans carry.

Lambda invokes a function subscribed to a topic *asynchronously* with one or more
``Records[].Sns`` notifications. There is no partial-batch response: the invocation
succeeds or raises, and a raise makes Lambda retry the whole event (its asynchronous
retries, then the function's on-failure destination or dead-letter queue).
"""

from __future__ import annotations

import json
from typing import Any

from .._settlement import Settlement
from ..driver import Delivery
from ..wire import SnsNotification, WireDecodeError, sns_notification
from ._tracing import TraceSource
from ._trigger import MalformedEvent

__all__ = ["NACK_DELAY", "REFUSALS", "SOURCE", "TRACE", "TRIGGER", "notification_of"]

TRIGGER = "AWS Lambda SNS trigger"
#: ``EventSource`` of every record of an SNS trigger event.
SOURCE = "aws:sns"
REFUSALS = {
    Settlement.EXTEND: "a notification has no lease to extend; the function runs up to its "
    "own timeout",
    Settlement.DEAD_LETTER: "notifications cannot be dead-lettered from the trigger; give the "
    "function an on-failure destination (or a dead-letter queue) for asynchronous invocation: "
    "raise, and the event goes there after Lambda's retries",
}
NACK_DELAY = (
    "a per-message nack delay cannot be expressed; nack() fails the invocation and Lambda "
    "retries the event with its own backoff"
)


def notification_of(record: object, index: int) -> SnsNotification:
    """The notification of one SNS event record; :class:`MalformedEvent` naming the record
    and the field for anything not in the documented shape."""
    where = f"SNS event record {index}"
    if not isinstance(record, dict):
        raise MalformedEvent(f"{where} is not an object")
    source = record.get("EventSource")
    if source != SOURCE:
        raise MalformedEvent(f"{where}: EventSource is {source!r}, expected {SOURCE!r}")
    sns = record.get("Sns")
    if not isinstance(sns, dict):
        raise MalformedEvent(f"{where}: 'Sns' must be an object, not {type(sns).__name__}")
    try:
        # One envelope reader for SQS bodies and trigger records: it takes the JSON text.
        notification = sns_notification(json.dumps(sns))
    except WireDecodeError as error:
        raise MalformedEvent(f"{where}: {error}") from None
    if notification is None:
        raise MalformedEvent(
            f"{where}: 'Sns' is not a notification (it needs Type 'Notification', "
            f"MessageId, TopicArn and Message; Type is {sns.get('Type')!r})"
        )
    return notification


def _describe(delivery: Delivery) -> dict[str, str]:
    """The topic, from the record's ``Sns.TopicArn`` (``arn:aws:sns:region:account:name``)."""
    record: Any = delivery.native
    arn = record["Sns"]["TopicArn"] if isinstance(record, dict) else None
    if isinstance(arn, str) and arn.count(":") >= 5:
        return {"messaging.destination.name": arn.rsplit(":", 1)[1], "aws.sns.topic.arn": arn}
    return {}


#: ``aws.sns`` is how the OpenTelemetry messaging conventions spell SNS (SQS keeps its
#: older ``aws_sqs``). SNS puts no X-Ray header in the record: nothing to link.
TRACE = TraceSource("aws.sns", _describe)
