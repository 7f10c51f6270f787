"""Run handlers as a long-lived worker: ``cloudqueue run module:app``.

::

    import cloudqueue
    from cloudqueue.worker import App, DoNotRetry

    app = App()

    @app.handler("sqlite:///shop.db?queue=orders", concurrency=8, max_attempts=5)
    def on_order(message: cloudqueue.ReceivedMessage) -> None:
        order = json.loads(message.body)        # raise -> retried with backoff
        if "id" not in order:
            raise DoNotRetry("order without id")  # -> dead-letter now

Per handler, ``rate="200/s"`` paces it and ``breaker=CircuitBreaker()`` stops
receiving while it keeps failing; ``Idempotency(store, key=...)`` middleware makes
processing effectively once.

The same handler runs behind AWS Lambda, Azure Functions and Pub/Sub push with
:mod:`cloudqueue.serverless`. See docs/worker.md.
"""

from ._app import App, Publication, Route
from ._breaker import BreakerState, CircuitBreaker
from ._counters import EVENTS as COUNTER_EVENTS
from ._counters import FIELDS as COUNTER_NAMES
from ._counters import Counters
from ._handler import AsyncHandler, Handler, SyncHandler
from ._idempotency import (
    Claim,
    ClaimState,
    Idempotency,
    IdempotencyStore,
    KeyFunction,
    by_attribute,
    by_deduplication_id,
    by_message_id,
)
from ._middleware import Defer, Duplicate, Middleware, Outcome, Skip
from ._policy import DoNotRetry, FailurePolicy
from ._rate import RateLimit, rate_limit
from ._stores import MemoryStore, SQLiteStore

__all__ = [
    "COUNTER_EVENTS",
    "COUNTER_NAMES",
    "App",
    "AsyncHandler",
    "BreakerState",
    "CircuitBreaker",
    "Claim",
    "ClaimState",
    "Counters",
    "Defer",
    "DoNotRetry",
    "Duplicate",
    "FailurePolicy",
    "Handler",
    "Idempotency",
    "IdempotencyStore",
    "KeyFunction",
    "MemoryStore",
    "Middleware",
    "Outcome",
    "Publication",
    "RateLimit",
    "Route",
    "SQLiteStore",
    "Skip",
    "SyncHandler",
    "by_attribute",
    "by_deduplication_id",
    "by_message_id",
    "rate_limit",
]
