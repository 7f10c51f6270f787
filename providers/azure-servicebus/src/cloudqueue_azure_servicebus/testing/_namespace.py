"""The namespace: named queues and topics, address resolution and the send path.

Also the two entity behaviours that span entities: auto-forwarding (``forward_to`` and
``forward_dead_lettered_messages_to``: a message arriving at, or dead-lettered in, an entity is
enqueued into the target queue or topic instead, at most ``MAX_FORWARD_HOPS`` times) and
auto-delete-on-idle (an entity without sends, receives, settlements, attached receivers or updates
for its ``auto_delete_on_idle`` time is deleted). ``idle_time_scale`` multiplies every idle window,
so a test can see a 5-minute window (the service's minimum) pass in 3 seconds with 0.01.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ._codec import CodecError, split_batch
from ._entities import NEVER, EntityProperties, Store
from ._errors import MESSAGE_SIZE_EXCEEDED, NOT_ALLOWED, NOT_FOUND, BrokerError
from ._message import State, StoredMessage
from ._rules import Rule, default_rule, route
from ._timers import Timers, now_ms

# The service forwards a message through at most four entities (auto-forwarding chains).
MAX_FORWARD_HOPS = 4
REASON_FORWARD_HOPS = "MaxTransferHopCountExceeded"
REASON_FORWARD_MISSING = "ForwardToEntityNotFound"


class EntityExists(Exception):
    pass


class EntityMissing(Exception):
    pass


@dataclass(eq=False)
class Inbox:
    """What senders address: a queue or a topic. Owns sequence numbers and duplicate detection."""

    name: str
    props: EntityProperties
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    next_seq: int = 1
    seen_ids: dict[str, int] = field(default_factory=dict)
    seen_order: deque[tuple[int, str]] = field(default_factory=deque)
    last_active_ms: int = field(default_factory=now_ms)  # sends and updates

    def is_duplicate(self, message_id: str | None, current: int) -> bool:
        if not self.props.requires_duplicate_detection or message_id is None:
            return False
        horizon = current - int(self.props.duplicate_detection_history_time_window * 1000)
        while self.seen_order and self.seen_order[0][0] < horizon:
            when, old = self.seen_order.popleft()
            if self.seen_ids.get(old) == when:
                del self.seen_ids[old]
        if message_id in self.seen_ids:
            return True
        self.seen_ids[message_id] = current
        self.seen_order.append((current, message_id))
        return False

    def targets(self) -> list[Store]:
        raise NotImplementedError

    def deliveries(self, msg: StoredMessage) -> list[tuple[Store, StoredMessage]]:
        """Where an accepted message goes, with the copy each destination keeps."""
        raise NotImplementedError


class Queue(Inbox):
    def __init__(self, name: str, props: EntityProperties, timers: Timers) -> None:
        super().__init__(name, props)
        self.store = Store(name, props, timers)

    def targets(self) -> list[Store]:
        return [self.store]

    def deliveries(self, msg: StoredMessage) -> list[tuple[Store, StoredMessage]]:
        return [(self.store, msg)]


class Topic(Inbox):
    def __init__(self, name: str, props: EntityProperties) -> None:
        super().__init__(name, props)
        self.subscriptions: dict[str, Subscription] = {}

    def targets(self) -> list[Store]:
        return [sub.store for sub in self.subscriptions.values()]

    def deliveries(self, msg: StoredMessage) -> list[tuple[Store, StoredMessage]]:
        out: list[tuple[Store, StoredMessage]] = []
        for sub in self.subscriptions.values():
            for index, properties in enumerate(route(sub.rules, msg)):
                dup = _copy(msg)
                if properties is not None:  # a rule action's own copy
                    dup.replace_application_properties(properties)
                if index:  # a store keys messages by sequence number: further copies need their own
                    dup.seq = self.next_seq
                    self.next_seq += 1
                out.append((sub.store, dup))
        return out


@dataclass(eq=False)
class Subscription:
    name: str
    topic: str
    store: Store
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Rule name (lower case) -> rule, in creation order; every subscription starts with $Default.
    rules: dict[str, Rule] = field(default_factory=lambda: {"$default": default_rule()})
    last_active_ms: int = field(default_factory=now_ms)  # updates and rule changes


Entity = Queue | Topic | Subscription


class Namespace:
    def __init__(self, timers: Timers, *, idle_time_scale: float = 1.0, sku: str = "Standard") -> None:
        if idle_time_scale <= 0:
            raise ValueError(f"idle_time_scale must be positive, not {idle_time_scale}")
        if sku not in ("Standard", "Premium"):
            raise ValueError(f"sku must be 'Standard' or 'Premium', not {sku!r}")
        self.timers = timers
        self.queues: dict[str, Queue] = {}
        self.topics: dict[str, Topic] = {}
        self.idle_time_scale = idle_time_scale
        self.sku = sku
        self.created = datetime.now(UTC)

    # ----- administration ------------------------------------------------------------

    def _check_free(self, name: str) -> None:
        if name.lower() in self.queues or name.lower() in self.topics:
            raise EntityExists(name)

    def create_queue(self, name: str, props: EntityProperties) -> Queue:
        self._check_free(name)
        queue = self.queues[name.lower()] = Queue(name, props, self.timers)
        queue.store.forwarder = self._forward
        self.arm_idle_timer(queue)
        return queue

    def create_topic(self, name: str, props: EntityProperties) -> Topic:
        self._check_free(name)
        topic = self.topics[name.lower()] = Topic(name, props)
        self.arm_idle_timer(topic)
        return topic

    def create_subscription(
        self, topic_name: str, name: str, props: EntityProperties, first_rule: Rule | None = None
    ) -> Subscription:
        """Create a subscription with ``first_rule`` (the request's default rule) or ``$Default``."""
        topic = self.topic(topic_name)
        if name.lower() in topic.subscriptions:
            raise EntityExists(name)
        path = f"{topic.name}/Subscriptions/{name}"
        sub = topic.subscriptions[name.lower()] = Subscription(
            name, topic.name, Store(path, props, self.timers)
        )
        if first_rule is not None:
            sub.rules = {first_rule.name.lower(): first_rule}
        sub.store.forwarder = self._forward
        sub.store.is_subscription = True
        self.arm_idle_timer(sub)
        return sub

    def queue(self, name: str) -> Queue:
        try:
            return self.queues[name.lower()]
        except KeyError:
            raise EntityMissing(name) from None

    def topic(self, name: str) -> Topic:
        try:
            return self.topics[name.lower()]
        except KeyError:
            raise EntityMissing(name) from None

    def subscription(self, topic_name: str, name: str) -> Subscription:
        try:
            return self.topic(topic_name).subscriptions[name.lower()]
        except KeyError:
            raise EntityMissing(name) from None

    def delete_queue(self, name: str) -> None:
        if self.queues.pop(name.lower(), None) is None:
            raise EntityMissing(name)

    def delete_topic(self, name: str) -> None:
        if self.topics.pop(name.lower(), None) is None:
            raise EntityMissing(name)

    def delete_subscription(self, topic_name: str, name: str) -> None:
        if self.topic(topic_name).subscriptions.pop(name.lower(), None) is None:
            raise EntityMissing(name)

    # ----- addressing ------------------------------------------------------------------

    @staticmethod
    def entity_path(address: str) -> str:
        """Strip ``amqps://host:port/`` and surrounding slashes from a link address."""
        if "://" in address:
            address = address.split("://", 1)[1]
            address = address.split("/", 1)[1] if "/" in address else ""
        return address.strip("/")

    def inbox(self, address: str) -> Inbox:
        path = self.entity_path(address)
        key = path.lower()
        if key in self.queues:
            return self.queues[key]
        if key in self.topics:
            return self.topics[key]
        raise BrokerError(NOT_FOUND, f"The messaging entity '{path}' could not be found.")

    def store(self, address: str) -> Store:
        """Resolve a receive address: queue, subscription, or their dead-letter subqueue."""
        path = self.entity_path(address)
        parts = path.split("/")
        dead_letter = len(parts) > 1 and parts[-1].lower() == "$deadletterqueue"
        if dead_letter:
            parts = parts[:-1]
        store: Store | None = None
        if len(parts) == 1 and parts[0].lower() in self.queues:
            store = self.queues[parts[0].lower()].store
        elif len(parts) == 3 and parts[1].lower() == "subscriptions":
            topic = self.topics.get(parts[0].lower())
            sub = topic.subscriptions.get(parts[2].lower()) if topic else None
            store = sub.store if sub else None
        if store is None:
            raise BrokerError(NOT_FOUND, f"The messaging entity '{path}' could not be found.")
        if dead_letter:
            assert store.dlq is not None
            return store.dlq
        return store

    # ----- sending ---------------------------------------------------------------------

    def send(self, inbox: Inbox, raw: bytes, max_bytes: int | None = None) -> list[int]:
        """Accept one transfer (a single message or a batch); returns sequence numbers."""
        limit = max_bytes or inbox.props.max_message_bytes
        if len(raw) > limit:
            raise BrokerError(
                MESSAGE_SIZE_EXCEEDED,
                f"The received message (size {len(raw)} bytes) exceeds the limit ({limit} bytes) "
                "currently allowed on the link.",
            )
        try:
            inner = split_batch(raw)
            parsed = [StoredMessage.parse(m, 0, 0) for m in (inner or [raw])]
        except CodecError as exc:
            raise BrokerError("amqp:decode-error", str(exc)) from exc
        return self.enqueue(inbox, parsed)

    def enqueue(self, inbox: Inbox, messages: list[StoredMessage]) -> list[int]:
        if isinstance(inbox, Queue) and inbox.props.requires_session:
            for msg in messages:
                if msg.session_id is None:
                    raise BrokerError(
                        NOT_ALLOWED,
                        "The SessionId was not set on a message, and it cannot be sent to the "
                        "entity. Entities that have session support enabled can only receive "
                        "messages that have the SessionId set to a valid value.",
                    )
        current = now_ms()
        inbox.last_active_ms = current
        seqs: list[int] = []
        for msg in messages:
            if inbox.is_duplicate(msg.message_id, current):
                continue
            msg.seq = inbox.next_seq
            inbox.next_seq += 1
            msg.enqueued_ms = current
            seqs.append(msg.seq)
            scheduled = msg.scheduled_annotation_ms
            if scheduled is not None and scheduled > current:
                msg.state = State.SCHEDULED
                msg.scheduled_ms = scheduled
            for store, copy_ in inbox.deliveries(msg):
                self._place(store, inbox, copy_, current)
        return seqs

    def _place(self, store: Store, inbox: Inbox, msg: StoredMessage, current: int) -> None:
        if store.props.forward_to:
            if not self._forward(store.props.forward_to, msg):
                store.dead_letter(msg, *self._forward_failure(store.props.forward_to, msg))
            return
        ttl_s = min(store.props.default_message_time_to_live, inbox.props.default_message_time_to_live)
        header_ttl = msg.header_ttl_ms
        ttl_ms = min(int(ttl_s * 1000), header_ttl) if header_ttl else int(ttl_s * 1000)
        start = msg.scheduled_ms or current
        msg.expires_ms = start + ttl_ms if ttl_ms < 10**13 else None
        if store.sessionful and msg.session_id is None:
            # A session-less message reaching a sessionful subscription has nowhere to go.
            return
        store.add(msg)
        if store.sessionful:
            store.offer_sessions()


    # ----- auto-forwarding ------------------------------------------------------------------

    def forward_target(self, address: str) -> Inbox | None:
        """The queue or topic a ``forward_to`` value names (a name or an ``sb://host/name`` URL)."""
        key = self.entity_path(address).lower()
        return self.queues.get(key) or self.topics.get(key)

    def _forward(self, address: str, msg: StoredMessage) -> bool:
        target = self.forward_target(address)
        if target is None or msg.hops >= MAX_FORWARD_HOPS:
            return False
        moved = _copy(msg)
        moved.hops = msg.hops + 1
        moved.state = State.ACTIVE
        moved.attempts = 0
        moved.lock_token = None
        moved.owner = None
        moved.deferred = False
        moved.scheduled_ms = None
        moved.expires_ms = None
        try:
            self.enqueue(target, [moved])
        except BrokerError:
            return False  # e.g. a sessionful target and a message without a session
        return True

    def _forward_failure(self, address: str, msg: StoredMessage) -> tuple[str, str]:
        if msg.hops >= MAX_FORWARD_HOPS:
            return REASON_FORWARD_HOPS, f"The message was forwarded {msg.hops} times; the limit is " \
                                        f"{MAX_FORWARD_HOPS} hops."
        return REASON_FORWARD_MISSING, f"The forwarding target {address!r} cannot accept the message."

    # ----- auto-delete-on-idle ----------------------------------------------------------------

    def _idle_window_ms(self, entity: Entity) -> int | None:
        props = entity.store.props if isinstance(entity, Subscription) else entity.props
        if props.auto_delete_on_idle >= NEVER:
            return None
        return max(1, int(props.auto_delete_on_idle * 1000 * self.idle_time_scale))

    def _last_active_ms(self, entity: Entity) -> int:
        if isinstance(entity, Topic):
            # A topic whose subscriptions are still read from is not idle.
            subs = [self._last_active_ms(sub) for sub in entity.subscriptions.values()]
            return max([entity.last_active_ms, *subs])
        return max(entity.last_active_ms, entity.store.last_active_ms)

    def _busy(self, entity: Entity) -> bool:
        """An attached receiver keeps an entity alive however long it waits."""
        if isinstance(entity, Topic):
            return any(self._busy(sub) for sub in entity.subscriptions.values())
        store = entity.store
        return bool(store.consumers) or (store.dlq is not None and bool(store.dlq.consumers))

    def arm_idle_timer(self, entity: Entity) -> None:
        """(Re)schedule the idle check; call after creating or updating an entity."""
        window = self._idle_window_ms(entity)
        if window is None:
            return
        deadline = max(self._last_active_ms(entity) + window, now_ms() + 1)
        self.timers.at(deadline, lambda: self._idle_check(entity))

    def _registered(self, entity: Entity) -> bool:
        if isinstance(entity, Queue):
            return self.queues.get(entity.name.lower()) is entity
        if isinstance(entity, Topic):
            return self.topics.get(entity.name.lower()) is entity
        topic = self.topics.get(entity.topic.lower())
        return topic is not None and topic.subscriptions.get(entity.name.lower()) is entity

    def _idle_check(self, entity: Entity) -> None:
        window = self._idle_window_ms(entity)
        if window is None or not self._registered(entity):
            return  # deleted meanwhile, or its idle time was updated to "never"
        current = now_ms()
        if self._busy(entity) or self._last_active_ms(entity) + window > current:
            if self._busy(entity):
                entity.last_active_ms = current
            self.arm_idle_timer(entity)
            return
        if isinstance(entity, Queue):
            self.delete_queue(entity.name)
        elif isinstance(entity, Topic):
            self.delete_topic(entity.name)
        else:
            self.delete_subscription(entity.topic, entity.name)


def _copy(msg: StoredMessage) -> StoredMessage:
    dup = copy.copy(msg)
    dup.sections = copy.copy(msg.sections)
    dup.sections.message_annotations = dict(msg.sections.message_annotations)
    return dup
