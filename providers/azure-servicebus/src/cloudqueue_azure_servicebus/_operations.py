"""The operations hooks (``cloudqueue.ops``): statistics, native peek and dead-letter facts.

- **stats** reads the entity's runtime properties through the administration client
  (one HTTPS request) and, for ``oldest_age``, peeks its first message (one AMQP
  request on a cached receiver). Service Bus documents these counts as a snapshot
  that is not updated in real time, so ``exact`` is False.
- **peek** is the service's own: ``$management`` peek by sequence number, which
  neither locks a message nor counts a delivery. It pages by sequence number, so a
  long peek is several requests. Session-enabled entities refuse a receiver without a
  session, and a session receiver would lock the session: peeking them is refused
  (their dead-letter subqueues have no sessions and peek fine).
- **dead_letter_facts** reads ``DeadLetterReason`` / ``DeadLetterErrorDescription``,
  the delivery count and the dead-letter source.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiver
from cloudqueue.driver import DeadLetterFacts, Delivery, QueueStats
from cloudqueue.errors import InvalidArgument, Unsupported, translate
from cloudqueue.wire import DEAD_LETTER_REASON

from ._admin import EntityCatalog
from ._errors import ERRORS
from ._handlers import Handler
from ._names import Target
from ._receiving import MANAGEMENT_TIMEOUT, open_receiver
from ._wire import delivery_of

__all__ = ["MAX_PEEK", "PEEK_PAGE", "Peekers", "dead_letter_facts", "stats"]

#: Most messages one ``peek`` returns (the portable API's bound).
MAX_PEEK = 1000
#: Messages asked for per ``$management`` peek request. The service does not promise
#: to fill a request (it returns what it streamed in time), so paging goes on until a
#: request returns nothing or enough were read.
PEEK_PAGE = 250
#: Reasons the service itself writes when it dead-letters a message. For these every
#: delivery before was a failed one and is in the delivery count; a consumer that
#: dead-letters a message does so during a delivery the count does not include yet.
SERVICE_REASONS = frozenset({
    "MaxDeliveryCountExceeded",
    "TTLExpiredException",
    "HeaderSizeExceeded",
    "MaxTransferHopCountExceeded",
    "ForwardToEntityNotFound",
    "Session id is null",
})
_UTC = datetime.UTC


class Peekers:
    """One receiver per entity, kept for peeking only (opening one costs about half a
    second; ``top`` and ``stats`` peek on every refresh). A receiver that never
    receives holds no locks; prefetch 0 keeps it from taking any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[tuple[int, Target], Handler[ServiceBusReceiver]] = {}

    @contextmanager
    def receiver(self, catalog: EntityCatalog, target: Target) -> Iterator[ServiceBusReceiver]:
        key = (id(catalog), target)
        with self._lock:
            handler = self._handlers.get(key)
            if handler is None:
                handler = self._handlers[key] = Handler(
                    lambda: open_receiver(catalog, target, prefetch_count=0)
                )
        with handler.use() as receiver:  # dropped on failure: the next peek opens a new one
            yield receiver

    def peek(self, catalog: EntityCatalog, target: Target, max_messages: int) -> list[Delivery]:
        if not 1 <= max_messages <= MAX_PEEK:
            raise InvalidArgument(f"max_messages={max_messages} is out of range: peek reads 1 to {MAX_PEEK}")
        _refuse_sessions(catalog, target)
        found: list[ServiceBusReceivedMessage] = []
        next_sequence = 1  # the SDK reads 0 as "after the last one this receiver saw"
        with translate(ERRORS, f"peeking Service Bus {target.describe()}"), \
                self.receiver(catalog, target) as receiver:
            while len(found) < max_messages:
                page = receiver.peek_messages(
                    max_message_count=min(PEEK_PAGE, max_messages - len(found)),
                    sequence_number=next_sequence,
                    timeout=MANAGEMENT_TIMEOUT,
                )
                if not page:
                    break
                found.extend(page)
                next_sequence = max(m.sequence_number or 0 for m in page) + 1
        found.sort(key=lambda m: m.sequence_number or 0)
        return [_peeked(message) for message in found[:max_messages]]

    def close(self) -> None:
        with self._lock:
            handlers = list(self._handlers.values())
            self._handlers.clear()
        for handler in handlers:
            handler.drop()

    def forget(self, catalog: EntityCatalog) -> None:
        """Close the receivers kept for ``catalog`` (its clients are about to close)."""
        with self._lock:
            keys = [key for key in self._handlers if key[0] == id(catalog)]
            handlers = [self._handlers.pop(key) for key in keys]
        for handler in handlers:
            handler.drop()


def _peeked(message: ServiceBusReceivedMessage) -> Delivery:
    delivery = delivery_of(message, None)
    delivery.token = None  # nothing to settle: a peeked message is not locked
    return delivery


def _refuse_sessions(catalog: EntityCatalog, target: Target) -> None:
    if not target.dead_letter and catalog.info(target).requires_session:
        raise Unsupported(
            f"cannot peek Service Bus {target.describe()}: it requires sessions (an ordered "
            "destination), and the "
            "service peeks a session-enabled entity only through a receiver that locks one "
            "session (which would hold that session's messages from its consumers). Its "
            "dead-letter subqueue has no sessions and can be peeked"
        )


def stats(catalog: EntityCatalog, target: Target, peekers: Peekers) -> QueueStats:
    """The entity's runtime counts (see the module docstring)."""
    info = catalog.info(target)
    if info.is_topic and target.subscription is None:
        raise InvalidArgument(
            f"Service Bus {target.describe()} is a topic: a topic holds no messages of its "
            "own; ask for one of its subscriptions (?subscription=<name>)"
        )
    admin = catalog.clients.admin
    with translate(ERRORS, f"reading the runtime properties of Service Bus {target.describe()}"):
        if target.subscription is None:
            props: Any = admin.get_queue_runtime_properties(target.entity)
            # Scheduled messages live in the queue itself.
            scheduled: int | None = props.scheduled_message_count
        else:
            props = admin.get_subscription_runtime_properties(target.entity, target.subscription)
            # Scheduled messages wait in the topic (they reach subscriptions when due,
            # through their rules): the service has no per-subscription count.
            scheduled = None
    dead = _sum(props.dead_letter_message_count, props.transfer_dead_letter_message_count)
    if target.dead_letter:
        # The subqueue itself: its messages are what it holds; nothing is scheduled
        # there and a dead-letter subqueue has no dead-letter subqueue of its own.
        return QueueStats(available=props.dead_letter_message_count, in_flight=None, delayed=0,
                          dead_letters=None, oldest_age=oldest_age(catalog, target, peekers), exact=False)
    return QueueStats(
        # The service's active count includes locked messages (and deferred ones): it
        # cannot tell how many are in flight.
        available=props.active_message_count,
        in_flight=None,
        delayed=scheduled,
        dead_letters=dead,
        oldest_age=oldest_age(catalog, target, peekers),
        exact=False,
    )


def oldest_age(catalog: EntityCatalog, target: Target, peekers: Peekers) -> float | None:
    """Seconds since the message with the lowest sequence number (the earliest enqueued
    one still held: active, locked, deferred, or on a queue scheduled) was enqueued, by
    its enqueued time; None when the entity is empty or requires sessions. Negative
    clock skew between the service and this machine reads as 0."""
    if not target.dead_letter and catalog.info(target).requires_session:
        return None
    first = peekers.peek(catalog, target, 1)
    if not first or first[0].enqueued_at is None:
        return None
    age = (datetime.datetime.now(_UTC) - first[0].enqueued_at).total_seconds()
    return max(0.0, age)


def _sum(*counts: int | None) -> int | None:
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


def dead_letter_facts(target: Target, delivery: Delivery) -> DeadLetterFacts:
    """What a dead letter of ``target`` says (see :meth:`cloudqueue.driver.Provider.dead_letter_facts`).

    - reason: ``DeadLetterReason``, with ``DeadLetterErrorDescription`` after a colon when
      it adds something (the service's own description of ``MaxDeliveryCountExceeded``,
      for example); either alone when only one is there.
    - delivery_count: deliveries at the source. The dead letter keeps the delivery count
      it had there; the service dead-letters by itself only after failed deliveries,
      which the count includes, while a consumer dead-letters during a delivery the count
      does not include yet (one more). Reading the dead letter with a lock and giving it
      back (a redrive's dry run, a receive-and-release peek) raises it by one each time.
    - source: the entity path it was dead-lettered from (``x-opt-deadletter-source``),
      else the entity the subqueue belongs to.
    """
    attributes = dict(delivery.attributes)
    reason = attributes.pop(DEAD_LETTER_REASON, None)  # DeadLetterReason, as delivery_of names it
    native = delivery.native
    description = source = None
    count: int | None = None
    if isinstance(native, ServiceBusReceivedMessage):
        description = native.dead_letter_error_description
        source = native.dead_letter_source
        if native.delivery_count is not None:
            count = native.delivery_count + (0 if reason in SERVICE_REASONS else 1)
    if source is None:
        source = target.entity + (f"/subscriptions/{target.subscription}" if target.subscription else "")
    return DeadLetterFacts(
        attributes=attributes,
        reason=_joined(reason, description),
        delivery_count=count,
        source=source,
    )


def _joined(reason: str | None, description: str | None) -> str | None:
    if not description or description == reason:
        return reason
    if not reason:
        return description
    return f"{reason}: {description}"
