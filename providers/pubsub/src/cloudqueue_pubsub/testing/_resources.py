"""What the broker keeps per topic and per subscription, and what it hands out."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import _config
from ._delivery import DeliveryQueue
from ._filters import Predicate, compile_filter
from ._history import SubscriptionHistory, TopicRetention


@dataclass(frozen=True)
class Delivered:
    """One message handed to a subscriber."""

    ack_id: str
    message: Any
    #: 0 (unset on the wire) unless the subscription has a dead-letter policy.
    delivery_attempt: int


@dataclass(frozen=True)
class Settings:
    """What delivery needs from a subscription's config, read once per config change."""

    ack_deadline: float
    ordered: bool
    retention: float
    dead_letter_topic: str
    max_delivery_attempts: int
    min_backoff: float
    max_backoff: float
    has_retry_policy: bool
    #: Whether the server pushes this subscription's messages to an HTTP endpoint.
    push: bool
    #: Acknowledge and ModifyAckDeadline report ack IDs that no longer hold a lease.
    exactly_once: bool

    @classmethod
    def of(cls, config: Any) -> Settings:
        has_dead_letter = config.HasField("dead_letter_policy")
        has_retry = config.HasField("retry_policy")
        return cls(
            ack_deadline=float(config.ack_deadline_seconds),
            ordered=config.enable_message_ordering,
            retention=_config.seconds_of(config.message_retention_duration),
            dead_letter_topic=config.dead_letter_policy.dead_letter_topic
            if has_dead_letter
            else "",
            max_delivery_attempts=config.dead_letter_policy.max_delivery_attempts,
            min_backoff=_config.seconds_of(config.retry_policy.minimum_backoff) if has_retry else 0,
            max_backoff=_config.seconds_of(config.retry_policy.maximum_backoff) if has_retry else 0,
            has_retry_policy=has_retry,
            push=bool(config.push_config.push_endpoint),
            exactly_once=config.enable_exactly_once_delivery,
        )

    def backoff(self, attempts: int) -> float:
        """Delay before redelivering a message that failed its delivery number ``attempts``."""
        if not self.has_retry_policy:
            return 0.0
        return exponential_backoff(self.min_backoff, self.max_backoff, attempts)


def exponential_backoff(minimum: float, maximum: float, attempts: int) -> float:
    """``min(maximum, minimum * 2 ** (attempts - 1))``: the delay after failed attempt N."""
    exponent = min(max(0, attempts - 1), 32)  # 2**32 * anything > 600 s
    return min(maximum, minimum * float(2**exponent))


class Topic:
    def __init__(self, config: Any) -> None:
        self.subscriptions: set[str] = set()
        #: Names of the snapshots taken of this topic's subscriptions; they collect new messages.
        self.snapshots: set[str] = set()
        self.retention: TopicRetention | None = None
        self.configure(config)

    def configure(self, config: Any) -> None:
        self.config = config
        self.retention_seconds = _config.seconds_of(config.message_retention_duration)
        if not self.retention_seconds:
            self.retention = None
        elif self.retention is None:
            self.retention = TopicRetention()


class Subscription:
    def __init__(self, config: Any, lock: threading.Lock, ack_ids: Iterable[int]) -> None:
        self.ack_ids = ack_ids
        self.queue = DeliveryQueue(iter(ack_ids))
        self.history = SubscriptionHistory()
        self.changed = threading.Condition(lock)
        self.deleted = False
        #: A push loop runs for this subscription (see Broker._push_loop).
        self.pushing = False
        #: Push requests sent and not yet answered.
        self.push_outstanding = 0
        self.configure(config)

    def configure(self, config: Any) -> None:
        self.config = config
        self.settings = Settings.of(config)
        self.predicate: Predicate | None = compile_filter(config.filter)
