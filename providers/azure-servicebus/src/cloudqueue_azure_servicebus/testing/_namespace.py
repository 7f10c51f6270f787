"""The namespace: named queues and topics, address resolution and the send path."""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ._codec import CodecError, split_batch
from ._entities import EntityProperties, Store
from ._errors import MESSAGE_SIZE_EXCEEDED, NOT_ALLOWED, NOT_FOUND, BrokerError
from ._message import State, StoredMessage
from ._rules import Rule, default_rule, route
from ._timers import Timers, now_ms


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


class Namespace:
    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.queues: dict[str, Queue] = {}
        self.topics: dict[str, Topic] = {}

    # ----- administration ------------------------------------------------------------

    def _check_free(self, name: str) -> None:
        if name.lower() in self.queues or name.lower() in self.topics:
            raise EntityExists(name)

    def create_queue(self, name: str, props: EntityProperties) -> Queue:
        self._check_free(name)
        queue = self.queues[name.lower()] = Queue(name, props, self.timers)
        return queue

    def create_topic(self, name: str, props: EntityProperties) -> Topic:
        self._check_free(name)
        topic = self.topics[name.lower()] = Topic(name, props)
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

    @staticmethod
    def _place(store: Store, inbox: Inbox, msg: StoredMessage, current: int) -> None:
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


def _copy(msg: StoredMessage) -> StoredMessage:
    dup = copy.copy(msg)
    dup.sections = copy.copy(msg.sections)
    dup.sections.message_annotations = dict(msg.sections.message_annotations)
    return dup
