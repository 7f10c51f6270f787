"""Options of producers and consumers, checked once, shared by both APIs.

They are checked when built, before any driver is opened, so a bad option
leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._engine.retry import RetryPolicy
from ._engine.validation import check_seconds
from .errors import InvalidArgument

__all__ = ["ConsumerOptions", "ProducerOptions"]


@dataclass(frozen=True, slots=True)
class ProducerOptions:
    #: Retries of retryable errors (throttling, outages) before a send fails.
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Send requests under way at once; concurrent sends beyond it coalesce.
    max_concurrent_batches: int = 8

    def __post_init__(self) -> None:
        _check_retry(self.retry)
        _check_positive_int(self.max_concurrent_batches, "max_concurrent_batches")


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

    def __post_init__(self) -> None:
        _check_retry(self.retry)
        _check_positive_int(self.max_in_flight, "max_in_flight")
        check_seconds(self.settle_delay, "settle_delay")
        check_seconds(self.max_lease_extension, "max_lease_extension")


def _check_retry(retry: object) -> None:
    if not isinstance(retry, RetryPolicy):
        raise InvalidArgument(
            f"retry must be a cloudqueue.RetryPolicy or None, not {type(retry).__name__}"
        )


def _check_positive_int(value: object, name: str) -> None:
    if type(value) is not int or value < 1:
        raise InvalidArgument(f"{name} must be an int of at least 1, not {value!r:.60}")
