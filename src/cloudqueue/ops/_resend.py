"""Turning one dead letter into the message a redrive sends back: same body, the
user's attributes and ordering key, provenance added, and a deduplication id of its
own where the target drops duplicates."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

from .._engine.validation import check_batch
from .._message import Message
from ..driver import Capabilities, DeadLetterFacts, Delivery, RedriveStamp
from ..filters import Filter
from ._types import PeekedMessage

__all__ = [
    "DEDUPLICATION_PREFIX",
    "Matcher",
    "deduplication_id",
    "matcher",
    "redrive_time",
    "resend_message",
    "validate_alone",
]

#: Starts every deduplication id a redrive sets: never the id the original was sent with.
DEDUPLICATION_PREFIX = "redrive-"

Matcher = Callable[[PeekedMessage], bool]


def matcher(where: Filter | Callable[[PeekedMessage], object] | None) -> Matcher | None:
    """``where`` as one predicate: a Filter is matched against the cleaned attributes."""
    if where is None:
        return None
    if isinstance(where, Filter):
        return lambda peeked: where.matches(peeked.attributes)
    predicate = where
    return lambda peeked: bool(predicate(peeked))


def deduplication_id(dead_letter_id: str, max_length: int) -> str:
    """The same for every redrive of one dead letter (a retried redrive is dropped by
    the target), and unlike the id the original was sent with (which must not drop it)."""
    digest = hashlib.sha256(dead_letter_id.encode()).hexdigest()
    return DEDUPLICATION_PREFIX + digest[: max(16, min(64, max_length - len(DEDUPLICATION_PREFIX)))]


def redrive_time(now: datetime.datetime) -> str:
    """The ``redrive_time`` value: ISO 8601, UTC, milliseconds, ``Z``."""
    return now.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resend_message(
    delivery: Delivery, facts: DeadLetterFacts, capabilities: Capabilities, stamp: RedriveStamp
) -> Message:
    """The message to send back for ``delivery``; raises a QueueError when it cannot be
    built (attributes the Message type refuses)."""
    return Message(
        delivery.body,
        attributes=stamp.attributes(
            facts.attributes, delivery.id, facts.reason, facts.delivery_count, facts.original_id
        ),
        ordering_key=delivery.ordering_key,
        deduplication_id=(
            deduplication_id(delivery.id, capabilities.limits.max_key_length)
            if capabilities.deduplication
            else None
        ),
    )


def validate_alone(
    message: Message, capabilities: Capabilities, measure: Callable[[Message], int], where: str
) -> int:
    """Its size, after checking it against the target's limits on its own, so that one
    message the target refuses never sinks the batch it would have travelled in."""
    return check_batch([message], capabilities, measure, where)[0]
