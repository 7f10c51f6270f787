"""Options of producers and consumers, checked once, shared by both APIs."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._engine.retry import RetryPolicy
from .errors import InvalidArgument

__all__ = ["ConsumerOptions", "ProducerOptions"]


@dataclass(frozen=True, slots=True)
class ProducerOptions:
    #: Retries of retryable errors (throttling, outages) before a send fails.
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Send requests under way at once; concurrent sends beyond it coalesce.
    max_concurrent_batches: int = 8

    def __post_init__(self) -> None:
        if self.max_concurrent_batches < 1:
            raise InvalidArgument("max_concurrent_batches must be at least 1")


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Messages prefetched or handed out and not yet settled, at most.
    max_in_flight: int = 1000
    #: Longest time an ack/nack waits to share a request with others.
    settle_delay: float = 0.05
    #: Held messages get their lease extended automatically for this long
    #: after they were received (0 turns automatic extension off).
    max_lease_extension: float = 1800.0
