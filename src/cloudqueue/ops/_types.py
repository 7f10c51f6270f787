"""What the operations functions return: peeked messages and redrive reports."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from ..driver import DeadLetterFacts, Delivery, QueueStats

__all__ = [
    "DeadLetterFacts",
    "PeekedMessage",
    "QueueStats",
    "RedriveFailure",
    "RedriveReport",
]


@dataclass(frozen=True, slots=True)
class PeekedMessage:
    """A message read without settling it (by :func:`cloudqueue.ops.peek`,
    :func:`~cloudqueue.ops.dead_letters`, or offered to a ``redrive`` predicate).

    For a dead letter, ``attributes`` are the user's attributes with the provider's
    dead-letter markers removed, and ``dead_letter`` says how it got there.
    """

    id: str
    body: bytes = field(repr=False)
    attributes: dict[str, str]
    ordering_key: str | None
    #: The delivery count as the provider reports it (None where it cannot know).
    delivery_attempt: int | None
    enqueued_at: datetime.datetime | None
    dead_letter: DeadLetterFacts | None = None
    #: The deduplication id the sender gave (see ``Delivery.deduplication_id``).
    deduplication_id: str | None = None

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    @classmethod
    def of(cls, delivery: Delivery, facts: DeadLetterFacts | None = None) -> PeekedMessage:
        """The peeked view of a driver's delivery (of a dead letter, with its facts)."""
        return cls(
            id=delivery.id,
            body=delivery.body,
            attributes=dict(delivery.attributes if facts is None else facts.attributes),
            ordering_key=delivery.ordering_key,
            delivery_attempt=delivery.delivery_attempt,
            enqueued_at=delivery.enqueued_at,
            dead_letter=facts,
            deduplication_id=delivery.deduplication_id,
        )


@dataclass(frozen=True, slots=True)
class RedriveFailure:
    """A dead letter the redrive could not send: it was left in the dead-letter queue."""

    message_id: str
    error: str


@dataclass(slots=True)
class RedriveReport:
    """What one :func:`cloudqueue.ops.redrive` run did (or, for a dry run, would do).

    ``source`` is the dead-letter queue read, ``target`` where messages went; both
    with secrets masked.
    """

    source: str
    target: str
    dry_run: bool
    #: Sent to the target and removed from the dead-letter queue (dry run: would be).
    moved: int = 0
    #: Did not match ``where``: left in the dead-letter queue.
    skipped: int = 0
    #: Not sent (refused by the target, or the send failed): left in the dead-letter queue.
    failures: list[RedriveFailure] = field(default_factory=list)
    #: Moved per dead-letter reason; ``""`` counts those whose reason is unknown.
    reasons: dict[str, int] = field(default_factory=dict)
    #: Seconds from the start of the run to now (the end, once returned).
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        """Messages moved per second over the run."""
        return self.moved / self.elapsed if self.elapsed > 0 else 0.0
