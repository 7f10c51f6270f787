"""Entity state: queues, topics, subscriptions, dead-letter subqueues, sessions, locks.

Everything here runs on the broker's loop thread (callers hold the broker lock).
A ``Store`` is anything messages are received from: a queue, a subscription or a
dead-letter subqueue. Ready messages sit in heaps of sequence numbers so that an
abandoned message goes back to its original place; stale heap entries are skipped
lazily rather than searched for.
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ._errors import LOCK_LOST, SESSION_CANNOT_BE_LOCKED, BrokerError
from ._message import DEADLETTER_SOURCE, State, StoredMessage
from ._timers import Timers, now_ms

DLQ_SUFFIX = "/$deadletterqueue"
REASON_MAX_DELIVERY = "MaxDeliveryCountExceeded"
REASON_TTL = "TTLExpiredException"
NEVER = 10675199 * 86400.0  # the service's "TimeSpan.MaxValue" days, in seconds


@dataclass
class EntityProperties:
    """Queue/topic/subscription properties: those the broker honours and those it only reports.

    Which request options land here, and which are refused, is decided in ``_entity_options``.
    """

    max_delivery_count: int = 10
    lock_duration: float = 60.0  # seconds
    requires_session: bool = False
    requires_duplicate_detection: bool = False
    duplicate_detection_history_time_window: float = 600.0
    default_message_time_to_live: float = NEVER
    dead_lettering_on_message_expiration: bool = False
    max_message_size_in_kilobytes: int = 256
    max_size_in_megabytes: int = 1024  # stored and reported; the quota is not enforced
    # Auto-forwarding: the target entity's name or sb:// address ("" = off).
    forward_to: str = ""
    forward_dead_lettered_messages_to: str = ""
    auto_delete_on_idle: float = NEVER  # seconds of idleness before the entity is deleted
    # Stored and reported only: they change nothing observable in a local broker.
    user_metadata: str = ""
    enable_batched_operations: bool = True
    dead_lettering_on_filter_evaluation_exceptions: bool = True
    support_ordering: bool = True

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_size_in_kilobytes * 1024

    def update(self, **props: Any) -> None:
        for key, value in props.items():
            if value is None:
                continue
            if not hasattr(self, key):
                raise TypeError(f"unknown entity property {key!r}")
            current = getattr(self, key)
            if isinstance(current, str):
                value = str(value)
            elif isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, float):
                value = float(value.total_seconds() if hasattr(value, "total_seconds") else value)
            setattr(self, key, type(current)(value))


class Consumer(Protocol):
    """What a store needs from a receiving link (implemented by the AMQP layer)."""

    session_id: str | None
    receive_and_delete: bool

    def credit(self) -> int: ...

    def deliver(self, store: Store, msg: StoredMessage) -> None: ...

    def session_lost(self) -> None: ...


class SessionWaiter(Protocol):
    """A receiver attach waiting for "next available session"."""

    def offer(self, store: Store, session_id: str) -> None: ...


@dataclass(eq=False)
class SessionInfo:
    ready: list[int] = field(default_factory=list)
    state: bytes | None = None
    owner: Consumer | None = None
    locked_until_ms: int = 0


class Store:
    """A queue, subscription or dead-letter subqueue: somewhere messages are received from."""

    def __init__(
        self, path: str, props: EntityProperties, timers: Timers, *, is_dlq: bool = False
    ) -> None:
        self.path = path
        self.props = props
        self.timers = timers
        self.is_dlq = is_dlq
        #: A topic subscription's store (set by the namespace): its scheduled messages
        #: stand for ones the service keeps in the topic until they are due.
        self.is_subscription = False
        self.parent: Store | None = None  # the entity a dead-letter subqueue belongs to
        self.messages: dict[int, StoredMessage] = {}
        self.ready: list[int] = []
        self.sessions: dict[str, SessionInfo] = {}
        self.locks: dict[uuid.UUID, StoredMessage] = {}
        self.consumers: deque[Consumer] = deque()
        self.waiters: list[SessionWaiter] = []
        self.dlq: Store | None = None
        # Set by the namespace: forwards a message to the named entity; False if it cannot.
        self.forwarder: Callable[[str, StoredMessage], bool] | None = None
        # Receives, settlements and attaches keep an entity alive (auto-delete-on-idle).
        self.last_active_ms = now_ms()
        if not is_dlq:
            # The dead-letter subqueue is never sessionful and never expires or re-dead-letters.
            dlq_props = replace(
                props, requires_session=False, max_delivery_count=2**31 - 1, forward_to="",
                forward_dead_lettered_messages_to="", auto_delete_on_idle=NEVER,
            )
            dlq_props.default_message_time_to_live = NEVER
            self.dlq = Store(path + "/$DeadLetterQueue", dlq_props, timers, is_dlq=True)
            self.dlq.parent = self

    @property
    def sessionful(self) -> bool:
        return self.props.requires_session and not self.is_dlq

    # ----- adding -------------------------------------------------------------------

    def add(self, msg: StoredMessage) -> None:
        self.messages[msg.seq] = msg
        if msg.expires_ms is not None:
            self.timers.at(msg.expires_ms, lambda: self._expire_if_due(msg))
        if msg.state is State.SCHEDULED and msg.scheduled_ms is not None:
            self.timers.at(msg.scheduled_ms, lambda: self._activate_scheduled(msg))
            return
        msg.state = State.ACTIVE
        self._make_ready(msg)
        self.dispatch()

    def _heap_for(self, session_id: str | None) -> list[int]:
        if not self.sessionful:
            return self.ready
        info = self.sessions.get(session_id or "")
        if info is None:
            info = self.sessions[session_id or ""] = SessionInfo()
        return info.ready

    def _make_ready(self, msg: StoredMessage) -> None:
        msg.state = State.ACTIVE
        msg.lock_token = None
        msg.owner = None
        heapq.heappush(self._heap_for(msg.session_id), msg.seq)

    def _activate_scheduled(self, msg: StoredMessage) -> None:
        if self.messages.get(msg.seq) is msg and msg.state is State.SCHEDULED:
            msg.enqueued_ms = now_ms()
            self._make_ready(msg)
            self.dispatch()
            self.offer_sessions()

    def _expire_if_due(self, msg: StoredMessage) -> None:
        # Locked messages expire when their lock ends, as the service does.
        if self.messages.get(msg.seq) is not msg or msg.state not in (State.ACTIVE, State.DEFERRED):
            return
        if msg.expires_ms is not None and msg.expires_ms <= now_ms():
            self._expire(msg)

    def _expire(self, msg: StoredMessage) -> None:
        if self.props.dead_lettering_on_message_expiration:
            self.dead_letter(msg, REASON_TTL, "Message has expired.")
        else:
            self.remove(msg)

    def remove(self, msg: StoredMessage) -> None:
        self.messages.pop(msg.seq, None)
        if msg.lock_token is not None:
            self.locks.pop(msg.lock_token, None)
        msg.lock_token = None
        msg.owner = None

    def dead_letter(
        self, msg: StoredMessage, reason: str | None, description: str | None, **extra: Any
    ) -> None:
        self.remove(msg)
        if self.dlq is None:
            return
        dead = copy.copy(msg)
        dead.sections = copy.copy(msg.sections)
        props: dict[str, Any] = {}
        if reason is not None:
            props["DeadLetterReason"] = reason
        if description is not None:
            props["DeadLetterErrorDescription"] = description
        props.update(extra)
        dead.set_application_properties(props)
        dead.sections.message_annotations = dict(msg.sections.message_annotations)
        dead.annotate({DEADLETTER_SOURCE: self.path})
        dead.expires_ms = None
        dead.deferred = False
        target = self.props.forward_dead_lettered_messages_to
        if target and self.forwarder is not None and self.forwarder(target, dead):
            return
        self.dlq.add(dead)

    def touch(self) -> None:
        self.last_active_ms = now_ms()
        if self.parent is not None:
            self.parent.touch()

    # ----- delivering ---------------------------------------------------------------

    def attach(self, consumer: Consumer) -> None:
        self.touch()
        self.consumers.append(consumer)

    def detach(self, consumer: Consumer) -> None:
        with contextlib.suppress(ValueError):
            self.consumers.remove(consumer)
        if consumer.session_id is not None:
            self.release_session(consumer, lost=False)

    def dispatch(self) -> None:
        """Hand ready messages to consumers with credit, round-robin."""
        if not self.consumers:
            return
        idle = 0
        while idle < len(self.consumers):
            consumer = self.consumers[0]
            self.consumers.rotate(-1)
            if consumer.credit() <= 0:
                idle += 1
                continue
            msg = self._next_ready(consumer.session_id)
            if msg is None:
                idle += 1
                continue
            idle = 0
            self._deliver(consumer, msg)

    def _next_ready(self, session_id: str | None) -> StoredMessage | None:
        if self.sessionful and session_id is None:
            return None
        heap = self._heap_for(session_id)
        current = now_ms()
        while heap:
            msg = self.messages.get(heapq.heappop(heap))
            if msg is None or msg.state is not State.ACTIVE:
                continue  # stale entry
            if msg.expires_ms is not None and msg.expires_ms <= current:
                self._expire(msg)
                continue
            return msg
        return None

    def _deliver(self, consumer: Consumer, msg: StoredMessage) -> None:
        self.touch()
        if consumer.receive_and_delete:
            self.remove(msg)
            consumer.deliver(self, msg)
            return
        self.lock(msg, consumer)
        consumer.deliver(self, msg)

    def lock(self, msg: StoredMessage, owner: Consumer | None) -> None:
        token = uuid.uuid4()
        msg.state = State.LOCKED
        msg.lock_token = token
        msg.owner = owner
        self.locks[token] = msg
        info = self.sessions.get(msg.session_id or "") if self.sessionful else None
        if info is not None and info.owner is not None and owner is info.owner:
            # Within a session the session lock covers its messages.
            msg.locked_until_ms = info.locked_until_ms
            return
        msg.locked_until_ms = now_ms() + int(self.props.lock_duration * 1000)
        self.timers.at(msg.locked_until_ms, lambda: self._lock_expired(msg, token))

    def _lock_expired(self, msg: StoredMessage, token: uuid.UUID) -> None:
        if msg.lock_token == token and msg.locked_until_ms <= now_ms():
            self._unlock(msg, count_attempt=True)

    # ----- settling -----------------------------------------------------------------

    def locked(self, token: uuid.UUID) -> StoredMessage:
        self.touch()
        msg = self.locks.get(token)
        if msg is None:
            raise BrokerError(LOCK_LOST, "The lock supplied is invalid. Either the lock expired, "
                              "or the message has already been removed from the queue.", 410)
        if msg.locked_until_ms <= now_ms() and not self._session_holds(msg):
            self._unlock(msg, count_attempt=True)
            raise BrokerError(LOCK_LOST, "The lock on the message has expired.", 410)
        return msg

    def _session_holds(self, msg: StoredMessage) -> bool:
        if not self.sessionful:
            return False
        info = self.sessions.get(msg.session_id or "")
        return info is not None and info.owner is not None and info.locked_until_ms > now_ms()

    def complete(self, token: uuid.UUID) -> None:
        self.remove(self.locked(token))

    def abandon(self, token: uuid.UUID, annotations: dict[Any, Any] | None = None) -> None:
        msg = self.locked(token)
        if annotations:
            msg.annotate(annotations)
        self._unlock(msg, count_attempt=True)

    def release(self, token: uuid.UUID) -> None:
        """AMQP ``released``: the client never looked at it, so no attempt is counted."""
        msg = self.locks.get(token)
        if msg is not None:
            self._unlock(msg, count_attempt=False)

    def defer(self, token: uuid.UUID, annotations: dict[Any, Any] | None = None) -> None:
        msg = self.locked(token)
        if annotations:
            msg.annotate(annotations)
        self.locks.pop(token, None)
        msg.lock_token = None
        msg.owner = None
        msg.deferred = True
        msg.state = State.DEFERRED

    def dead_letter_locked(
        self, token: uuid.UUID, reason: str | None, description: str | None,
        annotations: dict[Any, Any] | None = None,
    ) -> None:
        msg = self.locked(token)
        if annotations:
            msg.annotate(annotations)
        self.dead_letter(msg, reason, description)

    def renew(self, token: uuid.UUID) -> int:
        msg = self.locked(token)
        msg.locked_until_ms = now_ms() + int(self.props.lock_duration * 1000)
        self.timers.at(msg.locked_until_ms, lambda: self._lock_expired(msg, token))
        return msg.locked_until_ms

    def _unlock(self, msg: StoredMessage, *, count_attempt: bool) -> None:
        if msg.lock_token is not None:
            self.locks.pop(msg.lock_token, None)
        msg.lock_token = None
        msg.owner = None
        if count_attempt:
            msg.attempts += 1
            if msg.attempts >= self.props.max_delivery_count:
                self.dead_letter(
                    msg, REASON_MAX_DELIVERY,
                    f"Message could not be consumed after {self.props.max_delivery_count} "
                    "delivery attempts.",
                )
                return
        if msg.expires_ms is not None and msg.expires_ms <= now_ms():
            self._expire(msg)
            return
        if msg.deferred:
            msg.state = State.DEFERRED
            return
        self._make_ready(msg)
        self.dispatch()
        self.offer_sessions()

    # ----- by sequence number (peek, deferred, scheduled) ---------------------------

    def peek(self, from_seq: int, count: int, session_id: str | None) -> list[StoredMessage]:
        """As the service browses: by sequence number, active, locked and deferred messages
        (the lock is not shown and the delivery count is unchanged); scheduled ones only on
        a queue: a topic holds them until due, so a subscription's peek does not see them."""
        self.touch()
        out: list[StoredMessage] = []
        for seq in sorted(s for s in self.messages if s >= from_seq):
            msg = self.messages[seq]
            if self.sessionful and session_id is not None and msg.session_id != session_id:
                continue
            if msg.state is State.SCHEDULED and self.is_subscription:
                continue
            out.append(msg)
            if len(out) >= count:
                break
        return out

    def lock_deferred(self, seqs: list[int], session_id: str | None, delete: bool) -> list[StoredMessage]:
        self.touch()
        out: list[StoredMessage] = []
        for seq in seqs:
            msg = self.messages.get(seq)
            if msg is None or msg.state is not State.DEFERRED:
                continue
            if self.sessionful and session_id is not None and msg.session_id != session_id:
                continue
            if delete:
                self.remove(msg)
            else:
                self.lock(msg, None)
            out.append(msg)
        return out

    def cancel_scheduled(self, seqs: list[int]) -> None:
        for seq in seqs:
            msg = self.messages.get(seq)
            if msg is not None and msg.state is State.SCHEDULED:
                self.remove(msg)

    # ----- sessions -----------------------------------------------------------------

    def lock_session(self, session_id: str | None, consumer: Consumer) -> str:
        """Lock a named session, or the next available one if ``session_id`` is None.

        Raises BrokerError when the named session is held elsewhere; returns "" when no
        session is available (the caller waits).
        """
        current = now_ms()
        if session_id is None:
            best: tuple[int, str] | None = None
            for sid, info in self.sessions.items():
                if self._session_free(info, current) and self._has_ready(info):
                    first = min(info.ready)
                    if best is None or first < best[0]:
                        best = (first, sid)
            if best is None:
                return ""
            session_id = best[1]
        info = self.sessions.setdefault(session_id, SessionInfo())
        if not self._session_free(info, current):
            raise BrokerError(SESSION_CANNOT_BE_LOCKED,
                              f"The requested session '{session_id}' cannot be accepted. "
                              "It may be locked by another receiver.")
        info.owner = consumer
        self._extend_session(session_id, info)
        return session_id

    def _has_ready(self, info: SessionInfo) -> bool:
        return any(
            (m := self.messages.get(s)) is not None and m.state is State.ACTIVE for s in info.ready
        )

    def _session_free(self, info: SessionInfo, current: int) -> bool:
        return info.owner is None or info.locked_until_ms <= current

    def _extend_session(self, session_id: str, info: SessionInfo) -> None:
        info.locked_until_ms = now_ms() + int(self.props.lock_duration * 1000)
        owner, until = info.owner, info.locked_until_ms
        self.timers.at(until, lambda: self._session_expired(session_id, owner, until))

    def renew_session(self, session_id: str) -> int:
        info = self.sessions.get(session_id)
        if info is None or info.owner is None or info.locked_until_ms <= now_ms():
            raise BrokerError("com.microsoft:session-lock-lost", "The session lock has expired.", 410)
        self._extend_session(session_id, info)
        for msg in self.locks.values():
            if msg.session_id == session_id:
                msg.locked_until_ms = info.locked_until_ms
        return info.locked_until_ms

    def session_locked_until(self, session_id: str) -> int:
        info = self.sessions.get(session_id)
        return info.locked_until_ms if info is not None else 0

    def _session_expired(self, session_id: str, owner: Consumer | None, until: int) -> None:
        info = self.sessions.get(session_id)
        if info is None or info.owner is not owner or info.locked_until_ms != until or owner is None:
            return
        self.release_session(owner, lost=True)
        owner.session_lost()

    def release_session(self, consumer: Consumer, *, lost: bool) -> None:
        sid = consumer.session_id
        info = self.sessions.get(sid or "")
        if info is None or info.owner is not consumer:
            return
        info.owner = None
        info.locked_until_ms = 0
        # Messages locked under the session lose their lock with it.
        for msg in [m for m in self.locks.values() if m.owner is consumer]:
            self._unlock(msg, count_attempt=True)
        if not info.ready and info.state is None and not any(
            m.session_id == sid for m in self.messages.values()
        ):
            del self.sessions[sid or ""]
        self.offer_sessions()

    def offer_sessions(self) -> None:
        """Give waiting "next available session" receivers a session that has messages."""
        while self.waiters and self.sessionful:
            current = now_ms()
            candidates = [
                (min(info.ready), sid) for sid, info in self.sessions.items()
                if self._session_free(info, current) and self._has_ready(info)
            ]
            if not candidates:
                return
            _, sid = min(candidates)
            waiter = self.waiters.pop(0)
            waiter.offer(self, sid)

    # ----- counts for the admin surface --------------------------------------------

    def counts(self) -> dict[str, int]:
        """Counts as the service reports them: its active count includes locked and
        deferred messages (deferred ones stay in the entity; the service has no count of
        its own for them)."""
        active = scheduled = 0
        for msg in self.messages.values():
            if msg.state is State.SCHEDULED:
                scheduled += 1
            else:
                active += 1
        return {
            "active": active,
            "scheduled": scheduled,
            "dead_letter": len(self.dlq.messages) if self.dlq is not None else 0,
            "total": len(self.messages),
        }

    def scheduled_sequence_numbers(self) -> set[int]:
        return {msg.seq for msg in self.messages.values() if msg.state is State.SCHEDULED}

    def all_messages(self) -> Iterator[StoredMessage]:
        return iter(self.messages.values())

