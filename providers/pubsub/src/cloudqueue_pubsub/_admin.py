"""Provisioning: declare, purge and delete topics and subscriptions."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from cloudqueue.driver import Declaration
from cloudqueue.errors import FailedPrecondition, InvalidArgument, Unsupported
from google.api_core import exceptions as api
from google.protobuf import field_mask_pb2
from google.pubsub_v1 import DeadLetterPolicy, Subscription

from ._clients import Clients
from ._errors import translate_errors
from ._filter import expression
from ._names import Names

__all__ = ["declare", "delete", "purge", "read_subscription"]

MIN_ACK_DEADLINE, MAX_ACK_DEADLINE = 10, 600
MIN_DELIVERY_ATTEMPTS, MAX_DELIVERY_ATTEMPTS = 5, 100
_TIMEOUT = 30.0
#: Purging pulls until a Pull this short comes back empty.
_PURGE_PULL_SECONDS = 0.5


def ack_deadline_for(lease: float) -> int:
    """``lease`` as an ack deadline: whole seconds (rounded up) within Pub/Sub's 10..600."""
    seconds = math.ceil(lease)
    if not MIN_ACK_DEADLINE <= seconds <= MAX_ACK_DEADLINE:
        raise InvalidArgument(
            f"lease={lease:g}s is outside Pub/Sub's ack deadline range of "
            f"{MIN_ACK_DEADLINE}..{MAX_ACK_DEADLINE} seconds"
        )
    return seconds


def check_dead_letter_after(dead_letter_after: int | None) -> None:
    if dead_letter_after is not None and not (
        MIN_DELIVERY_ATTEMPTS <= dead_letter_after <= MAX_DELIVERY_ATTEMPTS
    ):
        raise InvalidArgument(
            f"dead_letter_after={dead_letter_after} is outside Pub/Sub's range of "
            f"{MIN_DELIVERY_ATTEMPTS}..{MAX_DELIVERY_ATTEMPTS} delivery attempts"
        )


def declare(clients: Clients, names: Names, declaration: Declaration) -> None:
    """Create the topic and, when the URL names one, the subscription with these settings
    (or bring an existing subscription to them). Everything is checked before any call."""
    if declaration.deduplicated:
        raise Unsupported(
            "Pub/Sub has no publish-side deduplication; declare without deduplicated=True"
        )
    check_dead_letter_after(declaration.dead_letter_after)
    ack_deadline = ack_deadline_for(declaration.lease)
    filter_text = "" if declaration.filter is None else expression(declaration.filter)
    if names.subscription is None and (declaration.dead_letter_after or declaration.ordered):
        raise InvalidArgument(
            f"ordered and dead_letter_after are settings of a subscription: declare "
            f"pubsub://{names.project}/{names.topic_id}?subscription=<name>"
        )
    _create_topic(clients, names.topic)
    if names.subscription is None:
        return
    wanted: dict[str, Any] = {
        "name": names.subscription,
        "topic": names.topic,
        "ack_deadline_seconds": ack_deadline,
        "enable_message_ordering": declaration.ordered,
        "filter": filter_text,
    }
    if declaration.dead_letter_after is not None:
        dead = names.dead_letter
        _create_topic(clients, dead.topic)
        _create_subscription(clients, {
            "name": dead.subscription, "topic": dead.topic, "ack_deadline_seconds": ack_deadline,
        })
        wanted["dead_letter_policy"] = DeadLetterPolicy(
            dead_letter_topic=dead.topic, max_delivery_attempts=declaration.dead_letter_after
        )
    if not _create_subscription(clients, wanted):
        _update_subscription(clients, names, wanted)


def _create_topic(clients: Clients, topic: str) -> None:
    with translate_errors(f"create topic {topic}"), contextlib.suppress(api.AlreadyExists):
        clients.publisher.create_topic(name=topic, retry=None, timeout=_TIMEOUT)


def _create_subscription(clients: Clients, fields: dict[str, Any]) -> bool:
    """True if created, False if it already existed."""
    with translate_errors(f"create subscription {fields['name']}"):
        try:
            clients.subscriber.create_subscription(
                request=Subscription(**fields), retry=None, timeout=_TIMEOUT
            )
        except api.AlreadyExists:
            return False
    return True


def _update_subscription(clients: Clients, names: Names, wanted: dict[str, Any]) -> None:
    current = read_subscription(clients, names)
    if current.topic != names.topic:
        raise FailedPrecondition(
            f"subscription {names.subscription_id!r} exists on another topic ({current.topic})"
        )
    if bool(current.enable_message_ordering) != wanted["enable_message_ordering"]:
        raise FailedPrecondition(
            f"{names.describe()} exists with ordered={bool(current.enable_message_ordering)}; "
            f"Pub/Sub cannot change message ordering of a subscription: delete it and declare again"
        )
    if current.filter != wanted["filter"]:
        raise FailedPrecondition(
            f"{names.describe()} exists with the filter {_shown(current.filter)}, not "
            f"{_shown(wanted['filter'])}; Pub/Sub cannot change the filter of a subscription: "
            "delete it and declare again"
        )
    policy = wanted.get("dead_letter_policy") or DeadLetterPolicy()
    update = Subscription(
        name=names.subscription, ack_deadline_seconds=wanted["ack_deadline_seconds"],
        dead_letter_policy=policy,
    )
    mask = field_mask_pb2.FieldMask(paths=["ack_deadline_seconds", "dead_letter_policy"])
    with translate_errors(f"update {names.describe()}"):
        clients.subscriber.update_subscription(
            subscription=update, update_mask=mask, retry=None, timeout=_TIMEOUT
        )


def _shown(filter_text: str) -> str:
    return repr(filter_text) if filter_text else "(none)"


def read_subscription(clients: Clients, names: Names) -> Any:
    """The ``Subscription`` resource (raw protobuf) named by ``names``."""
    with translate_errors(f"read {names.describe()}"):
        found = clients.subscriber.get_subscription(
            subscription=names.subscription, retry=None, timeout=_TIMEOUT
        )
    return type(found).pb(found)


def purge(clients: Clients, names: Names, subscription: str) -> None:
    """Pull and acknowledge until nothing is left. Messages leased to consumers at that
    moment are not purged: they come back if their consumers do not acknowledge them."""
    subscriber = clients.subscriber
    with translate_errors(f"purge {names.describe()}"):
        while True:
            try:
                response = subscriber.pull(
                    subscription=subscription, max_messages=1000, retry=None,
                    timeout=_PURGE_PULL_SECONDS,
                )
            except api.DeadlineExceeded:
                return
            ack_ids = [received.ack_id for received in response.received_messages]
            if not ack_ids:
                return
            subscriber.acknowledge(
                subscription=subscription, ack_ids=ack_ids, retry=None, timeout=_TIMEOUT
            )


def delete(clients: Clients, names: Names) -> None:
    """Delete the named subscription; or, for a topic URL, the topic with every subscription
    it has and its ``<topic>-dead-letter`` topic and subscription."""
    if names.subscription is not None:
        with translate_errors(f"delete {names.describe()}"):
            clients.subscriber.delete_subscription(
                subscription=names.subscription, retry=None, timeout=_TIMEOUT
            )
        return
    with translate_errors(f"delete {names.describe()}"):
        subscriptions = list(clients.publisher.list_topic_subscriptions(
            topic=names.topic, retry=None, timeout=_TIMEOUT
        ))
        for subscription in subscriptions:
            with contextlib.suppress(api.NotFound):
                clients.subscriber.delete_subscription(
                    subscription=subscription, retry=None, timeout=_TIMEOUT
                )
        clients.publisher.delete_topic(topic=names.topic, retry=None, timeout=_TIMEOUT)
        dead = names.dead_letter
        with contextlib.suppress(api.NotFound):
            clients.subscriber.delete_subscription(
                subscription=dead.subscription, retry=None, timeout=_TIMEOUT
            )
        with contextlib.suppress(api.NotFound):
            clients.publisher.delete_topic(topic=dead.topic, retry=None, timeout=_TIMEOUT)
