"""Operations hooks on Pub/Sub: statistics, what a dead letter says, where it came from,
and where a redrive may send.

Pub/Sub's API has no backlog counts: the numbers (``num_undelivered_messages``, the oldest
unacked message's age) are Cloud Monitoring metrics, a separate API with its own
credentials and minutes of delay. So :func:`stats` reads the subscription (it must exist)
and knows nothing else; the local server offers no hidden extra either.

Dead letters: the service forwards a message to the dead-letter topic as a new message (new
id and publish time) with four ``CloudPubSubDeadLetterSource*`` attributes; a copy sent by
``message.dead_letter(reason)`` carries the same ones (see ``_subscribe``) and
``dead_letter_reason``. Republishing reaches every subscription of a topic: a redrive into
one subscription is only allowed while it is its topic's only one.
"""

from __future__ import annotations

from typing import Any

from cloudqueue.driver import DeadLetterFacts, Delivery, QueueStats, Url
from cloudqueue.errors import InvalidArgument, NotFound, Unsupported
from cloudqueue.wire import DEAD_LETTER_REASON, REDRIVE_ORIGINAL_ID

from ._admin import read_subscription
from ._clients import Clients
from ._errors import translate_errors
from ._names import DEAD_LETTER_SUFFIX, Names, names_of
from ._wire import ORIGINAL_ID_MARKER

__all__ = [
    "SOURCE_DELIVERY_COUNT",
    "SOURCE_PREFIX",
    "SOURCE_PROJECT",
    "SOURCE_PUBLISH_TIME",
    "SOURCE_SUBSCRIPTION",
    "dead_letter_facts",
    "redrive_source",
    "redrive_target_check",
    "stats",
]

#: Every attribute the service adds to a forwarded dead letter starts with this.
SOURCE_PREFIX = "CloudPubSubDeadLetterSource"
SOURCE_DELIVERY_COUNT = SOURCE_PREFIX + "DeliveryCount"
SOURCE_SUBSCRIPTION = SOURCE_PREFIX + "Subscription"
SOURCE_PROJECT = SOURCE_PREFIX + "SubscriptionProject"
SOURCE_PUBLISH_TIME = SOURCE_PREFIX + "TopicPublishTime"
_TIMEOUT = 30.0


def stats(clients: Clients, url: Url) -> QueueStats:
    names = names_of(url)
    if names.subscription is None:
        raise InvalidArgument(
            f"Pub/Sub keeps messages per subscription: name one, "
            f"pubsub://{names.project}/{names.topic_id}?subscription=<name>"
        )
    read_subscription(clients, names)  # NotFound for a subscription that does not exist
    return QueueStats(
        available=None, in_flight=None, delayed=None, dead_letters=None, oldest_age=None,
        exact=False,
    )


def dead_letter_facts(delivery: Delivery) -> DeadLetterFacts:
    native: Any = delivery.native
    # The marker is taken out of Delivery.attributes on receipt: read the message itself.
    original_id = native.attributes.get(ORIGINAL_ID_MARKER) if native is not None else None
    attributes = dict(delivery.attributes)
    reason = attributes.pop(DEAD_LETTER_REASON, None)
    source = {name: attributes.pop(name) for name in list(attributes)
              if name.startswith(SOURCE_PREFIX)}
    count = source.get(SOURCE_DELIVERY_COUNT, "")
    subscription = source.get(SOURCE_SUBSCRIPTION)
    project = source.get(SOURCE_PROJECT)
    where = subscription
    if subscription and project:
        where = f"projects/{project}/subscriptions/{subscription}"
    return DeadLetterFacts(
        attributes=attributes,
        reason=reason,
        delivery_count=int(count) if count.isdigit() else None,
        original_id=original_id or None,
        source=where,
    )


def _subscriptions_of(clients: Clients, topic: str) -> list[str]:
    """Every subscription id of ``topic`` (the client's pager follows next_page_token)."""
    with translate_errors(f"list the subscriptions of Pub/Sub topic {topic}"):
        found = clients.publisher.list_topic_subscriptions(
            topic=topic, retry=None, timeout=_TIMEOUT
        )
        return sorted(str(name).rsplit("/", 1)[-1] for name in found)


def redrive_source(clients: Clients, url: Url) -> Url:
    names = names_of(url)
    base = names.topic_id.removesuffix(DEAD_LETTER_SUFFIX)
    if base == names.topic_id or not base:
        raise InvalidArgument(
            f"{names.describe()} is not a dead-letter topic of any subscription (cloudqueue "
            f"names them <topic>{DEAD_LETTER_SUFFIX}): pass to= naming where its messages "
            "should go"
        )
    source = Names(names.project, base, None)
    try:
        candidates = _subscriptions_of(clients, source.topic)
    except NotFound:
        candidates = []
    policies = {
        subscription: _dead_letter_topic(clients, Names(names.project, base, subscription))
        for subscription in candidates
    }
    feeding = [subscription for subscription, dead in policies.items() if dead == names.topic]
    if len(feeding) == 1:
        return url.replace(host=names.project, path=f"/{base}", params={"subscription": feeding[0]})
    if len(feeding) > 1:
        # Siblings on one topic: a publish would reach them all, whichever is named.
        raise Unsupported(
            f"{names.describe()} holds the dead letters of {len(feeding)} subscriptions of "
            f"{source.topic} ({', '.join(feeding)}); Pub/Sub cannot publish to one "
            "subscription, and publishing to the topic would reach every subscription. "
            "Redrive with to= naming a topic only the intended subscription's consumers read"
        )
    if not any(policies.values()):
        raise Unsupported(
            f"no subscription of {source.topic} has a dead-letter policy, so "
            f"{names.describe()} holds no dead letters of it; declare the subscription with "
            "dead_letter_after=N to have them"
        )
    raise InvalidArgument(
        f"{names.describe()} is not a dead-letter topic of any subscription (no "
        f"subscription of {source.topic} has it in its dead-letter policy): pass to= "
        "naming where its messages should go"
    )


def _dead_letter_topic(clients: Clients, names: Names) -> str | None:
    try:
        resource: Any = read_subscription(clients, names)
    except NotFound:  # deleted while we looked
        return None
    return str(resource.dead_letter_policy.dead_letter_topic) or None


def redrive_target_check(clients: Clients, url: Url) -> None:
    """Refuse a redrive into one subscription of a topic that has others: a publish would
    reach them all. Checked once, when the redrive starts; a sibling created during the
    redrive receives what is sent after it appears (a documented race)."""
    names = names_of(url)
    wanted = names.subscription_id
    if wanted is None:
        return
    subscriptions = _subscriptions_of(clients, names.topic)
    if wanted not in subscriptions:
        raise NotFound(f"{names.describe()} does not exist (its topic has no such subscription)")
    siblings = [subscription for subscription in subscriptions if subscription != wanted]
    if siblings:
        raise Unsupported(
            f"Pub/Sub cannot publish to one subscription: {names.topic} also has "
            f"{', '.join(siblings)}, which would receive every redriven message too. Redrive "
            f"with to= naming a topic only this subscription's consumers read, or declare the "
            f"sibling subscriptions with a filter that excludes redriven messages "
            f"(NOT attributes:{REDRIVE_ORIGINAL_ID})"
        )
