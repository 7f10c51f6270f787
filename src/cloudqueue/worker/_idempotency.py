"""Effectively-once processing: skip deliveries of messages already processed.

Every queue delivers at least once: a lease that runs out, a crash before the ack or
a producer that sends twice all hand the handler a message it has seen. The
:class:`Idempotency` middleware keeps each processed message's key in a store and
acks a later delivery with the same key without running the handler. The store is
the extension point: see :class:`IdempotencyStore` for the contract, and
:mod:`._stores` for the in-memory and SQLite-file ones.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import InvalidArgument
from ._middleware import AnyMessage, Defer, Duplicate, Middleware, Outcome
from ._policy import DoNotRetry

__all__ = [
    "Claim", "ClaimState", "Idempotency", "IdempotencyStore", "KeyFunction", "by_attribute",
    "by_deduplication_id", "by_message_id",
]

#: Longest key, in characters: longer keys are a mistake (a body used as a key?).
MAX_KEY_LENGTH = 512

KeyFunction = Callable[[AnyMessage], str]


class ClaimState(enum.Enum):
    #: Nobody processed or holds the key: the caller holds it now and runs the handler.
    CLAIMED = "claimed"
    #: Processed within the retention window: the delivery is a duplicate.
    DONE = "done"
    #: Another delivery holds the key (its handler is running, or its process died
    #: within the hold): try again after ``retry_after`` seconds.
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    #: For ``BUSY``: seconds until the other holder's hold runs out.
    retry_after: float = 0.0


class IdempotencyStore(Protocol):
    """Where processed keys are kept. Implement these three methods to keep them in
    your own database table or in Redis; every method may be called from several
    threads (and, for a shared store, several processes) at once, so each must be
    atomic on its own. Times are seconds; a store measures them with a clock all its
    users share (wall-clock time for a store shared between processes or machines).

    A table ``(key PRIMARY KEY, done BOOLEAN, expires TIMESTAMP)`` does it: ``claim``
    is one transaction that reads the row and, when it is missing or expired, writes
    ``(key, false, now + hold)``; ``complete`` upserts ``(key, true, now + retention)``;
    ``release`` deletes the row where ``done`` is false; rows past ``expires`` are
    ignored and may be purged at leisure. In Redis: ``SET key busy NX PX hold`` to
    claim (on failure ``GET`` and ``PTTL`` tell ``DONE`` from ``BUSY``), ``SET key done
    PX retention`` to complete, and a compare-and-delete script to release.
    """

    def claim(self, key: str, hold: float) -> Claim:
        """Take ``key`` for ``hold`` seconds unless it is done or held by someone else.

        Returns ``Claim(CLAIMED)`` when the caller now holds it; ``Claim(DONE)`` when it
        was completed less than its retention ago; ``Claim(BUSY, retry_after)`` when
        another caller holds it and its hold has ``retry_after`` seconds left. A hold
        that ran out counts as no hold (its holder is presumed dead)."""
        ...

    def complete(self, key: str, retention: float) -> None:
        """Mark ``key`` done for ``retention`` seconds (whether or not it was held):
        every ``claim`` within that time answers ``DONE``. Must be durable when it
        returns: the message is acked right after."""
        ...

    def release(self, key: str) -> None:
        """Drop a hold on ``key`` that was not completed (the handler failed), so that
        the next delivery claims it at once. Must not remove a completed key."""
        ...


def by_message_id(message: AnyMessage) -> str:
    """The provider's message id: the same for every redelivery of one sent message
    (a lease that ran out, a crash before the ack), different for each send."""
    return message.id


#: Before a deduplication id in :func:`by_deduplication_id`'s keys: the sender chooses
#: these ids, so one could equal another message's provider id; the prefix keeps the
#: two kinds of key apart (provider ids never start with it).
DEDUPLICATION_KEY_PREFIX = "deduplication-id:"


def by_deduplication_id(message: AnyMessage) -> str:
    """The deduplication id the sender gave, else the provider's message id (the
    default key).

    With a deduplication id, a message sent twice with the same id is caught even
    after the provider's deduplication window (or on another destination served
    with the same store). Without one, the key is the message id: redeliveries of
    one send are caught on every provider, but a second *send* is a new message with
    a new id; give such messages a deduplication id, or use :func:`by_attribute`.
    Pub/Sub has no deduplication ids, so there this is :func:`by_message_id`."""
    deduplication_id = message.deduplication_id
    if deduplication_id is not None:
        return DEDUPLICATION_KEY_PREFIX + deduplication_id
    return message.id


def by_attribute(name: str) -> KeyFunction:
    """A key function reading attribute ``name`` (set by the producer, e.g. an order id):
    also catches a message sent twice. A message without it is dead-lettered."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"by_attribute needs an attribute name, not {name!r}")

    def key(message: AnyMessage) -> str:
        value = message.attributes.get(name)
        if value is None:
            raise DoNotRetry(f"message has no {name!r} attribute to use as its idempotency key")
        return value

    key.__qualname__ = f"by_attribute({name!r})"
    return key


class Idempotency(Middleware):
    """Run the handler at most once per key while the key is retained; ack duplicates.

    ::

        store = SQLiteStore("/var/lib/shop/processed.db")
        app = App(middleware=[Idempotency(store)])  # keyed by_deduplication_id

    ``key`` is a function of the message: by default :func:`by_deduplication_id` (the
    sender's deduplication id, else the message id, which only catches redeliveries:
    a duplicate *send* without a deduplication id needs a key function such as
    :func:`by_attribute`). Per delivery: the key is claimed before the handler runs (a duplicate being
    processed at the same moment is given back for later, :class:`Defer`); when the
    handler succeeds the key is completed *before* the ack, so a crash between the two
    leads to a skip on redelivery; when the handler fails the claim is released and
    the message retried as usual. ``retention`` (seconds, default 7 days) must outlast
    the time within which duplicates can arrive; ``hold`` (default 120 s) must outlast
    the handler's longest run, or a redelivery may run while the first run goes on.
    """

    def __init__(
        self, store: IdempotencyStore, *, key: KeyFunction = by_deduplication_id,
        retention: float = 7 * 24 * 3600.0, hold: float = 120.0,
    ) -> None:
        for name in ("claim", "complete", "release"):
            if not callable(getattr(store, name, None)):
                raise InvalidArgument(f"store must implement IdempotencyStore (no {name}()): {store!r}")
        if not callable(key):
            raise InvalidArgument(f"key must be a function of the message, not {key!r}")
        for label, value in (("retention", retention), ("hold", hold)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument(f"{label} must be a number of seconds > 0, not {value!r}")
        self.store = store
        self.key = key
        self.retention = float(retention)
        self.hold = float(hold)
        self._lock = threading.Lock()
        # Messages whose key this middleware claimed and has not completed or released.
        self._held: dict[AnyMessage, str] = {}

    def key_of(self, message: AnyMessage) -> str:
        value = self.key(message)
        if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
            shown = f"a str of {len(value)} characters" if isinstance(value, str) else type(value).__name__
            raise DoNotRetry(
                f"idempotency key must be a non-empty str of at most {MAX_KEY_LENGTH} characters, not {shown}"
            )
        return value

    def before_process(self, message: AnyMessage, source: str) -> None:
        key = self.key_of(message)
        claim = self.store.claim(key, self.hold)
        if claim.state is ClaimState.DONE:
            raise Duplicate(f"message {message.id} was processed before (key {key!r})")
        if claim.state is ClaimState.BUSY:
            # A moment after the other holder's hold ends: by then it completed (a
            # skip follows) or it died (this delivery claims the key).
            raise Defer(claim.retry_after + 1.0, "another delivery with this key is being processed")
        with self._lock:
            self._held[message] = key

    def before_ack(self, message: AnyMessage, source: str) -> None:
        with self._lock:
            key = self._held.pop(message, None)
        if key is not None:
            self.store.complete(key, self.retention)

    def after_process(self, message: AnyMessage, source: str, outcome: Outcome) -> None:
        with self._lock:
            key = self._held.pop(message, None)
        if key is not None:  # claimed, not completed: the handler (or a later hook) failed
            self.store.release(key)
