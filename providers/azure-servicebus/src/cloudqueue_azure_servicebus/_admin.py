"""Provisioning and entity facts through ``ServiceBusAdministrationClient``.

Which features a destination has (sessions, duplicate detection, size limit)
is a property of the entity in Service Bus, so capabilities are read from it
once per entity and cached until ``declare`` or ``delete`` changes it.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import threading
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusReceiveMode
from azure.servicebus.exceptions import OperationTimeoutError
from azure.servicebus.management import TrueRuleFilter
from cloudqueue.driver import Capabilities, Declaration, Limits
from cloudqueue.errors import FailedPrecondition, InvalidArgument, NotFound, translate

from ._clients import NamespaceClients
from ._errors import ERRORS
from ._filter import DEFAULT_RULE, RULE_NAME, rule_filter
from ._names import Target
from ._tracing import CARRIER

__all__ = ["ATTEMPTS_PROPERTY", "RESERVED_PREFIX", "EntityCatalog", "EntityInfo", "capabilities_for"]

#: Prefix of application properties the driver keeps for itself.
RESERVED_PREFIX = "cloudqueue."
#: Earlier attempts carried by a copy scheduled for ``nack(delay)``.
ATTEMPTS_PROPERTY = RESERVED_PREFIX + "attempts"
#: MaxDeliveryCount when no dead-letter limit is declared (the service's maximum).
UNLIMITED_DELIVERIES = 2**31 - 1
MAX_LOCK_DURATION = 300.0  # seconds: the service refuses longer locks
_STANDARD_MESSAGE_KB = 256


@dataclass(frozen=True, slots=True)
class EntityInfo:
    is_topic: bool
    requires_session: bool
    duplicate_detection: bool
    max_message_bytes: int
    lock_duration: float


def _seconds(value: Any, default: float) -> float:
    return value.total_seconds() if isinstance(value, datetime.timedelta) else default


class EntityCatalog:
    """Entity facts per target, and the provisioning calls, for one namespace."""

    def __init__(self, clients: NamespaceClients) -> None:
        self.clients = clients
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str | None], EntityInfo] = {}

    def forget(self, entity: str) -> None:
        with self._lock:
            for key in [key for key in self._known if key[0] == entity]:
                del self._known[key]

    def info(self, target: Target) -> EntityInfo:
        key = (target.entity, target.subscription)
        with self._lock:
            found = self._known.get(key)
        if found is None:
            with translate(ERRORS, f"looking up Service Bus entity {target.describe()}"):
                found = self._look_up(target)
            with self._lock:
                self._known[key] = found
        return found

    def _look_up(self, target: Target) -> EntityInfo:
        admin = self.clients.admin
        if target.subscription is None:
            queue = _get(admin.get_queue, target.entity)
            if queue is not None:
                return EntityInfo(
                    False, bool(queue.requires_session), bool(queue.requires_duplicate_detection),
                    (queue.max_message_size_in_kilobytes or _STANDARD_MESSAGE_KB) * 1024,
                    _seconds(queue.lock_duration, 60.0),
                )
        elif self._is_queue(target.entity):
            raise InvalidArgument(
                f"Service Bus entity {target.entity!r} is a queue: queues have no subscriptions"
            )
        topic = _get(admin.get_topic, target.entity)
        if topic is None:
            raise NotFound(f"Service Bus entity {target.describe()} does not exist")
        requires_session, lock = False, 60.0
        if target.subscription is not None:
            try:
                sub = admin.get_subscription(target.entity, target.subscription)
            except ResourceNotFoundError:
                raise NotFound(f"Service Bus entity {target.describe()} does not exist") from None
            requires_session, lock = bool(sub.requires_session), _seconds(sub.lock_duration, 60.0)
        return EntityInfo(
            True, requires_session, bool(topic.requires_duplicate_detection),
            (topic.max_message_size_in_kilobytes or _STANDARD_MESSAGE_KB) * 1024, lock,
        )

    def _is_queue(self, name: str) -> bool:
        return _get(self.clients.admin.get_queue, name) is not None

    # -- provisioning ----------------------------------------------------------

    def declare(self, target: Target, declaration: Declaration) -> None:
        if target.dead_letter:
            raise InvalidArgument("a $deadletterqueue exists with its entity; declare the entity itself")
        if declaration.lease > MAX_LOCK_DURATION:
            raise InvalidArgument(
                f"lease {declaration.lease:g}s is longer than Service Bus allows "
                f"(lock duration at most {MAX_LOCK_DURATION:g}s)"
            )
        if declaration.filter is not None and target.subscription is None:
            raise InvalidArgument("a filter belongs to a topic subscription, not to a queue")
        rule = rule_filter(declaration.filter)  # checked before any call
        entity_settings: dict[str, Any] = {
            "max_delivery_count": declaration.dead_letter_after or UNLIMITED_DELIVERIES,
            "lock_duration": datetime.timedelta(seconds=declaration.lease),
            "requires_session": declaration.ordered,
        }
        admin = self.clients.admin
        with translate(ERRORS, f"declaring Service Bus entity {target.describe()}"):
            if target.subscription is None:
                self._create_or_update(
                    admin.create_queue, admin.get_queue, admin.update_queue, target.entity,
                    dict(entity_settings, requires_duplicate_detection=declaration.deduplicated),
                )
            else:
                self._create_or_update(
                    admin.create_topic, admin.get_topic, admin.update_topic, target.entity,
                    {"requires_duplicate_detection": declaration.deduplicated},
                )
                self._create_or_update(
                    functools.partial(admin.create_subscription, target.entity),
                    functools.partial(admin.get_subscription, target.entity),
                    functools.partial(admin.update_subscription, target.entity),
                    target.subscription, entity_settings,
                )
                self._route(target.entity, target.subscription, rule)
        self.forget(target.entity)

    def _route(self, topic: str, subscription: str, rule: Any) -> None:
        """Leave the subscription exactly one rule: ours with ``rule``, or the true
        ``$Default`` when there is no filter. The new rule is in place before the old
        ones go, so no message is dropped meanwhile (some may pass both ways)."""
        admin = self.clients.admin
        name = DEFAULT_RULE if isinstance(rule, TrueRuleFilter) else RULE_NAME
        existing = {found.name: found for found in admin.list_rules(topic, subscription)}
        current = existing.pop(name, None)
        if current is None:
            admin.create_rule(topic, subscription, name, filter=rule)
        elif not _same_filter(current.filter, rule) or current.action is not None:
            current.filter, current.action = rule, None
            admin.update_rule(topic, subscription, current)
        for other in existing:
            with contextlib.suppress(ResourceNotFoundError):
                admin.delete_rule(topic, subscription, other)

    @staticmethod
    def _create_or_update(create: Any, get: Any, update: Any, name: str, settings: dict[str, Any]) -> None:
        try:
            create(name, **settings)
            return
        except ResourceExistsError:
            pass
        existing = get(name)
        for immutable in ("requires_session", "requires_duplicate_detection"):
            if immutable in settings and bool(getattr(existing, immutable)) != settings[immutable]:
                raise FailedPrecondition(
                    f"Service Bus entity {name!r} exists with {immutable}={getattr(existing, immutable)}; "
                    "Service Bus cannot change it: delete the entity and declare it again"
                )
        for field, value in settings.items():
            setattr(existing, field, value)
        update(existing)

    def delete(self, target: Target) -> None:
        admin = self.clients.admin
        with translate(ERRORS, f"deleting Service Bus entity {target.describe()}"):
            if target.subscription is not None:
                admin.delete_subscription(target.entity, target.subscription)
            elif self.info(target).is_topic:
                admin.delete_topic(target.entity)
            else:
                admin.delete_queue(target.entity)
        self.forget(target.entity)

    def purge(self, target: Target, receiver_for: Any) -> None:
        """Receive-and-delete until the entity (every session of it) is empty.

        Scheduled messages that are not yet due are not removed.
        """
        info = self.info(target)
        with translate(ERRORS, f"purging Service Bus entity {target.describe()}"):
            while True:
                session = NEXT_AVAILABLE_SESSION if info.requires_session else None
                try:
                    receiver = receiver_for(
                        target, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE,
                        session_id=session, max_wait_time=0.5,
                    )
                    with receiver:
                        drained = 0
                        while batch := receiver.receive_messages(max_message_count=100, max_wait_time=0.5):
                            drained += len(batch)
                except OperationTimeoutError:
                    return  # no session has messages left
                if not info.requires_session or drained == 0:
                    return


def _same_filter(current: Any, wanted: Any) -> bool:
    return type(current) is type(wanted) and all(
        getattr(current, field, None) == getattr(wanted, field, None)
        for field in ("sql_expression", "properties")
    )


def _get(getter: Any, name: str) -> Any:
    """``getter(name)``, or None when no entity of that kind has the name.

    Asked for a queue under a topic's name (or the reverse), the service answers
    with the other kind's entry and the SDK fails to read it as this kind
    (AttributeError while converting the entry): that also means "not this kind".
    """
    try:
        return getter(name)
    except (ResourceNotFoundError, AttributeError):
        return None


def capabilities_for(target: Target, info: EntityInfo) -> Capabilities:
    return _capabilities(
        info.is_topic, info.requires_session, info.duplicate_detection, info.max_message_bytes,
        target.dead_letter,
    )


@functools.cache
def _capabilities(
    is_topic: bool, sessions: bool, deduplication: bool, max_message_bytes: int, dead_letters: bool
) -> Capabilities:
    # A delayed nack schedules a copy on the entity; on a topic that copy would reach
    # every subscription, and a $deadletterqueue takes no sends at all. In a session
    # the copy would land behind the session's later messages: out of order.
    nack_delay = not is_topic and not dead_letters and not sessions
    year = 365 * 86400.0
    limits = Limits(
        max_message_bytes=max_message_bytes,
        max_send_batch=100,
        max_send_batch_bytes=max_message_bytes,
        max_receive_batch=100,
        max_settle_batch=100,
        max_attributes=100,
        max_attribute_name_bytes=256,
        max_attribute_value_bytes=32 * 1024,
        reserved_attribute_prefixes=(RESERVED_PREFIX,),
        max_delay=year,
        max_nack_delay=year if nack_delay else None,
        max_lease=MAX_LOCK_DURATION,
        max_receive_wait=20.0,
        max_key_length=128,
        trace_carrier=CARRIER,
    )
    return Capabilities(
        limits=limits,
        ordering=sessions,
        deduplication=deduplication,
        delayed_delivery=True,
        dead_letter=not dead_letters,
        delivery_attempt=True,
        nack_delay=nack_delay,
        lease_extension=True,
        fan_out=is_topic,
        implicit_create=False,
        durable=True,
        filters=is_topic,  # as subscription rules (see _filter.py)
    )
