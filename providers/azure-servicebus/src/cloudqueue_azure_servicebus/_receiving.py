"""The subscription driver: peek-lock receive and settlement through one reused receiver.

Semantics (see docs/providers/azure-servicebus.md): ack = complete; nack = abandon;
nack(delay) = schedule a copy at now+delay, then complete the original (a failure
between the two can duplicate the message, never lose it); extend = renew the
lock once (Service Bus renews by the entity's lock duration, whatever was asked;
the portable layer renews again as often as the lease must be kept); dead_letter =
dead-letter with the reason.

On session-enabled entities the receiver holds one session at a time (the next
available one) and receives its messages in batches, in order; the portable layer
hands them out one at a time. When that session has nothing more and no message of
it is unsettled, the receiver lets it go and takes the next one. Every message of a
session shares the session's lock: renewing one renews them all.

After a lost connection (every SDK call goes through the error table; a failed
receive drops the receiver, and the next call opens a new one):

- on entities without sessions a message stays settleable by its lock token until
  its lock ends, through whichever receiver is open: the SDK settles it on the link
  that received it, or else over the ``$management`` link. A settlement that fails
  with the connection is ``Unavailable`` (the portable layer retries it, on a new
  receiver once the connection is back);
- on session-enabled entities the session's lock goes with the receiver that held
  it (the service gives the session's messages back), so settling or renewing a
  message received through a receiver that is gone is ``LeaseLost``: the message
  will be delivered again.

A settlement that fails in a way after which the SDK closes the receiver's link
(``shutdown_handler``) drops the receiver, so the next call opens a new one rather
than letting the SDK reopen the closed one behind the driver's back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusReceivedMessage,
    ServiceBusReceiver,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageNotFoundError,
    OperationTimeoutError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
    SessionLockLostError,
)
from cloudqueue.driver import BatchErrors, Capabilities, Delivery, SubscriptionDriver
from cloudqueue.errors import ErrorCode, LeaseLost, QueueError, Unavailable, translate, translated

from ._admin import EntityCatalog, capabilities_for
from ._errors import ERRORS
from ._handlers import Handler
from ._names import Target
from ._sending import open_sender, outcome_unknown
from ._tracing import telemetry_attributes
from ._wire import copy_for_retry, delivery_of, seconds_until

__all__ = ["MANAGEMENT_TIMEOUT", "ServiceBusSubscription", "open_receiver"]

T = TypeVar("T")

# Longest single SDK receive call: settlements share the receiver and wait for it,
# so a long poll is cut into slices this short.
_RECEIVE_SLICE = 0.25
# The SDK refuses a zero wait; an expired budget still gets one quick look.
_SHORTEST_WAIT = 0.01
#: Longest wait for the reply to a ``$management`` request (lock renewals). The SDK
#: waits for ever by default: a renewal whose reply never came hung a redrive's
#: consumer, holding the receiver (and every settlement behind it) for good.
MANAGEMENT_TIMEOUT = 10.0
#: SDK errors of a settlement or renewal after which the receiver stays usable: they
#: concern one message or one call. After any other error the SDK has closed the
#: receiver's link (``shutdown_handler``) and would quietly open a new one on the next
#: call (a session receiver's session lock gone with the old one): the driver drops
#: the receiver instead, and opens a new one when next needed.
_RECEIVER_SURVIVES = (
    MessageLockLostError,
    MessageAlreadySettled,
    MessageNotFoundError,
    OperationTimeoutError,
    ServiceBusServerBusyError,
    ServiceBusQuotaExceededError,
)


def open_receiver(catalog: EntityCatalog, target: Target, **options: Any) -> ServiceBusReceiver:
    client = catalog.clients.client
    if target.dead_letter:
        options["sub_queue"] = ServiceBusSubQueue.DEAD_LETTER
    if target.subscription is not None:
        return client.get_subscription_receiver(
            topic_name=target.entity, subscription_name=target.subscription, **options
        )
    return client.get_queue_receiver(queue_name=target.entity, **options)


def _renew_if_due(receiver: ServiceBusReceiver, lock_duration: float) -> None:
    """Renew an idle held session's lock once half of it is gone. A session is held
    across receive calls; and a message received from it gets what is left of the
    session's lock as its lease, which must leave the consumer time to renew or
    settle it (the portable layer renews at half a lease)."""
    session = receiver.session
    ends, started = seconds_until(session.locked_until_utc), time.monotonic()
    if ends is not None and ends - started < lock_duration / 2 + _RECEIVE_SLICE:
        session.renew_lock(timeout=MANAGEMENT_TIMEOUT)


class ServiceBusSubscription(SubscriptionDriver):
    def __init__(
        self, catalog: EntityCatalog, target: Target, on_close: Callable[[], None] | None = None
    ) -> None:
        self._catalog = catalog
        self._target = target
        self._on_close = on_close
        self._sessions: bool | None = None
        #: Set by interrupt_receives: receives return after their current slice.
        self._interrupted = False
        # prefetch_count=0: the SDK then grants credit per receive call, sized by the
        # batch the portable layer asks for (its adaptive prefetch), and holds nothing
        # locked between calls.
        self._receiver: Handler[ServiceBusReceiver] = Handler(self._open_receiver)
        self._sender = Handler(lambda: open_sender(catalog, target))
        #: Unsettled messages and the receiver that received each one. On session-enabled
        #: entities only that receiver can settle it (it holds the session's lock).
        self._unsettled: dict[ServiceBusReceivedMessage, ServiceBusReceiver] = {}

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_for(self._target, self._catalog.info(self._target))

    def _open_receiver(self) -> ServiceBusReceiver:
        options: dict[str, Any] = {"prefetch_count": 0}
        if self._uses_sessions():
            # Session locks taken through an earlier receiver are gone with it.
            self._unsettled.clear()
            options.update(session_id=NEXT_AVAILABLE_SESSION, max_wait_time=_RECEIVE_SLICE)
        else:
            # Message locks outlive their receiver; forget only those that have ended.
            now = time.monotonic()
            for message in [m for m in self._unsettled if _lock_ended(m, now)]:
                del self._unsettled[message]
        receiver = open_receiver(self._catalog, self._target, **options)
        # Open the link now, with the SDK's own timeout: a receive call would cap the
        # open at its (short) wait and fail before the link is up.
        try:
            receiver.__enter__()
        except Exception:
            _close_quietly(receiver)  # no half-open connection left behind
            raise
        return receiver

    def _session_lapsed(self) -> bool:
        with self._receiver.lock:
            receiver = self._receiver.current
            if receiver is None:
                return True
            ends = seconds_until(receiver.session.locked_until_utc)
            return ends is not None and ends <= time.monotonic()

    def _uses_sessions(self) -> bool:
        if self._sessions is None:
            info = self._catalog.info(self._target)
            self._sessions = info.requires_session and not self._target.dead_letter
        return self._sessions

    # -- receiving ---------------------------------------------------------------

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        give_up = time.monotonic() + wait
        where = f"receiving from Service Bus {self._target.describe()}"
        while True:
            remaining = give_up - time.monotonic()
            slice_wait = max(_SHORTEST_WAIT, min(_RECEIVE_SLICE, remaining))
            got = self._receive_slice(max_messages, slice_wait, where)
            if got or remaining <= _RECEIVE_SLICE or self._interrupted:
                return got

    def interrupt_receives(self) -> None:
        self._interrupted = True  # a receive ends with its current slice

    def _receive_slice(self, max_messages: int, wait: float, where: str) -> list[Delivery]:
        sessions = self._uses_sessions()
        if sessions and self._unsettled and self._session_lapsed():
            # The session's lock lapsed with messages unsettled: they go back to the
            # entity, in order. Let the session go and take the next available one.
            self._receiver.drop()
        try:
            with translate(ERRORS, where), self._receiver.use() as receiver:
                if sessions and not self._unsettled:
                    # An idle held session. With messages unsettled the session's lock
                    # is their lease: the portable layer renews it through extend(),
                    # or lets it lapse (max_lease_extension=0).
                    _renew_if_due(receiver, self._catalog.info(self._target).lock_duration)
                received = receiver.receive_messages(max_message_count=max_messages, max_wait_time=wait)
                if sessions and not received and not self._unsettled:
                    self._receiver.drop_held()  # an idle session: let another consumer have it
                    return []
                session_deadline = seconds_until(receiver.session.locked_until_utc) if sessions else None
                for message in received:
                    self._unsettled[message] = receiver
        except QueueError as error:
            if sessions and isinstance(error.__cause__, OperationTimeoutError | SessionLockLostError):
                # No session has messages now, or ours lapsed (the receiver was dropped,
                # so the next call takes the next available session).
                return []
            raise
        return [
            delivery_of(message, session_deadline if sessions else seconds_until(message.locked_until_utc))
            for message in received
        ]

    # -- settling ----------------------------------------------------------------

    def _each(self, entries: Sequence[tuple[Any, Any]], what: str,
              settle: Callable[[ServiceBusReceiver, Any, Any], T], *,
              settles: bool = True) -> list[T | QueueError]:
        """``settle(receiver, message, argument)`` for each ``(message, argument)``;
        per-entry outcomes (see the module's docstring for which receiver)."""
        outcomes: list[T | QueueError] = []
        where = f"{what} on Service Bus {self._target.describe()}"
        sessions = self._uses_sessions()
        with self._receiver.lock:
            receiver = self._receiver.current
            no_receiver: QueueError | None = None  # why there is none (tried once per call)
            for message, argument in entries:
                try:
                    holder = self._unsettled.get(message)
                    if holder is None:
                        raise LeaseLost(f"{where} failed: the message was settled, or its lock "
                                        "was lost (it may be delivered again)")
                    if sessions and holder is not receiver:
                        raise LeaseLost(f"{where} failed: the session's lock was lost with the "
                                        "receiver (connection) that held it (it will be delivered again)")
                    if receiver is None:
                        if no_receiver is not None:
                            raise no_receiver
                        try:
                            with translate(ERRORS, f"{where}: opening a receiver"):
                                receiver = self._receiver.open_held()
                        except QueueError as error:
                            no_receiver = error
                            raise
                    outcome = settle(receiver, message, argument)
                except QueueError as error:  # ours, or the sender's (nack with a delay)
                    outcomes.append(self._failed(message, error))
                    continue
                except Exception as exc:  # the receiver's (SDK) call failed
                    closed = not isinstance(exc, _RECEIVER_SURVIVES)
                    failure = _settlement_error(exc, where, sessions=sessions, receiver_closed=closed)
                    if closed:  # the SDK closed the link: open a new receiver next time
                        self._receiver.drop_held()
                        receiver = None
                        no_receiver = Unavailable(f"{where} failed: the receiver's link closed "
                                                  "after an earlier failure; retrying on a new one")
                    outcomes.append(self._failed(message, failure))
                    continue
                if settles:
                    self._unsettled.pop(message, None)
                outcomes.append(outcome)
        return outcomes

    def _failed(self, message: Any, error: QueueError) -> QueueError:
        if not error.retryable:  # the lock is gone or the message settled: forget it
            self._unsettled.pop(message, None)
        return error

    def _settle_each(self, entries: Sequence[tuple[Any, Any]], what: str,
                     settle: Callable[[ServiceBusReceiver, Any, Any], None]) -> BatchErrors:
        errors = [o if isinstance(o, QueueError) else None for o in self._each(entries, what, settle)]
        return errors if any(errors) else None

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        def complete(receiver: ServiceBusReceiver, message: Any, _: None) -> None:
            receiver.complete_message(message)

        return self._settle_each([(token, None) for token in tokens], "complete", complete)

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        def abandon_or_reschedule(receiver: ServiceBusReceiver, message: Any, delay: float) -> None:
            if delay <= 0:
                receiver.abandon_message(message)
                return
            # Copy first, then complete: a crash in between duplicates, never loses.
            copy = copy_for_retry(delivery_of(message, None), delay)
            where = f"scheduling a copy on Service Bus {self._target.describe()}"
            try:
                with translate(ERRORS, where), self._sender.use() as sender:
                    sender.send_messages(copy)
            except QueueError as error:
                raise outcome_unknown(error) from error.__cause__
            receiver.complete_message(message)

        return self._settle_each(entries, "nack", abandon_or_reschedule)

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        def dead_letter(receiver: ServiceBusReceiver, message: Any, reason: str) -> None:
            receiver.dead_letter_message(message, reason=reason, error_description=reason)

        return self._settle_each(entries, "dead-letter", dead_letter)

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        def abandon(receiver: ServiceBusReceiver, message: Any, _: None) -> None:
            receiver.abandon_message(message)

        return self._settle_each([(token, None) for token in tokens], "give back", abandon)

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        # Service Bus renews a lock by the entity's lock duration, whatever was asked:
        # return the deadline it granted; the portable layer renews again in time.
        # In a session every message shares the session's lock: renew it once.
        session_until: float | None = None

        def renew(receiver: ServiceBusReceiver, message: Any, _: float) -> float:
            nonlocal session_until
            if not self._uses_sessions():
                until = seconds_until(receiver.renew_message_lock(message, timeout=MANAGEMENT_TIMEOUT))
            else:
                if session_until is None:
                    session_until = seconds_until(receiver.session.renew_lock(timeout=MANAGEMENT_TIMEOUT))
                until = session_until
            if until is None:  # the SDK always says; a missing answer means no lock
                raise LeaseLost("Service Bus granted no lock")
            return until

        return self._each(entries, "renew lock", renew, settles=False)

    def close(self) -> None:
        self._receiver.drop()
        self._sender.drop()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        client = self._catalog.clients.client  # made without a network call
        return telemetry_attributes(client.fully_qualified_namespace, self._target)

    def native_objects(self) -> Iterable[object]:
        receiver = self._receiver.current
        client = self._catalog.clients.client
        return (receiver, client) if receiver is not None else (client,)


def _settlement_error(exc: Exception, where: str, *, sessions: bool, receiver_closed: bool) -> QueueError:
    """The portable error for a failed settlement or renewal: a lost lock is
    ``LeaseLost`` (not retryable: the message will be delivered again), and so is
    any failure that closed a session receiver (the session's lock went with it).
    Without sessions the lock survives its receiver: a failure that closed it is
    retryable, on the new receiver the next call opens."""
    error = translated(exc, ERRORS, where)
    if isinstance(exc, MessageLockLostError | SessionLockLostError):
        lost = LeaseLost(f"{error} (it may be delivered again)")
    elif receiver_closed and sessions:
        lost = LeaseLost(f"{error}; the session's lock was lost with the receiver's link "
                         "(it will be delivered again)")
    elif receiver_closed and error.code is ErrorCode.UNKNOWN:
        # The SDK refused to use the receiver (closed by an earlier failure) or failed
        # in a way the table does not know; the receiver is replaced now.
        retry = Unavailable(f"{error} (the receiver was closed; retrying on a new one)")
        retry.__cause__ = exc
        return retry
    else:
        return error
    lost.__cause__ = exc
    return lost


def _lock_ended(message: ServiceBusReceivedMessage, now: float) -> bool:
    ends = seconds_until(message.locked_until_utc)
    return ends is not None and ends <= now


def _close_quietly(receiver: ServiceBusReceiver) -> None:
    # Closing after a failed open may fail the same way; it is gone either way.
    with contextlib.suppress(Exception):
        receiver.close()
