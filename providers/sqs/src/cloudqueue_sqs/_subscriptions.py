"""The SQS queue behind an SNS subscription: its name, its queue policy, the subscription.

``sns://orders?subscription=billing`` reads the SQS queue ``orders-billing``
(``orders.fifo`` -> ``orders-billing.fifo``), subscribed to the topic with raw message
delivery; its dead letters go to the SQS plugin's twin ``orders-billing-dlq``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cloudqueue.errors import InvalidArgument, NotFound

from ._queues import FIFO_SUFFIX, Queue, sqs_call
from ._topics import Topic

__all__ = [
    "POLICY_SID",
    "find_subscription",
    "list_subscriptions",
    "queue_policy",
    "subscribe",
    "subscription_queue_name",
    "topic_queues",
    "unsubscribe",
]

_SUBSCRIPTION_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: SQS's longest queue name.
_MAX_QUEUE_NAME = 80
#: The Sid of the queue policy statement cloudqueue owns; other statements are the user's.
POLICY_SID = "cloudqueue-sns-topic"
#: The SNS protocol of a subscription delivering to an SQS queue.
_PROTOCOL = "sqs"


def _base(topic: str) -> str:
    return topic[: -len(FIFO_SUFFIX)] if topic.endswith(FIFO_SUFFIX) else topic


def subscription_queue_name(topic: str, subscription: str) -> str:
    """``orders`` + ``billing`` -> ``orders-billing``; ``orders.fifo`` -> ``orders-billing.fifo``."""
    if not _SUBSCRIPTION_NAME.fullmatch(subscription):
        raise InvalidArgument(
            "an SNS subscription name is letters, digits, '-' or '_' (it names an SQS queue), "
            f"not {subscription!r:.100}"
        )
    suffix = FIFO_SUFFIX if topic.endswith(FIFO_SUFFIX) else ""
    name = f"{_base(topic)}-{subscription}{suffix}"
    if len(name) > _MAX_QUEUE_NAME:
        raise InvalidArgument(
            f"the SQS queue behind SNS subscription {subscription!r:.100} of topic "
            f"{topic!r:.100} would be named '<topic>-<subscription>{suffix}', "
            f"{len(name)} characters; SQS allows at most {_MAX_QUEUE_NAME}: shorten the "
            f"topic ({len(topic)}) or the subscription ({len(subscription)}) name"
        )
    return name


def topic_queues(topic: str, queue_names: list[str]) -> list[str]:
    """The queue names among ``queue_names`` that the naming rule gives to ``topic``'s
    subscriptions (a user's own queue subscribed to the topic is not one)."""
    suffix = FIFO_SUFFIX if topic.endswith(FIFO_SUFFIX) else ""
    prefix = _base(topic) + "-"
    found = []
    for name in queue_names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        subscription = name[len(prefix): len(name) - len(suffix)]
        if subscription and _SUBSCRIPTION_NAME.fullmatch(subscription):
            found.append(name)
    return found


def queue_policy(existing: str | None, queue_arn: str, topic_arn: str) -> str:
    """The queue's policy with one statement letting only ``topic_arn`` send to it; the
    statements someone else added are kept, ours replaced."""
    policy: dict[str, Any] = json.loads(existing) if existing else {}
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == POLICY_SID)]
    ours = {
        "Sid": POLICY_SID,
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }
    policy.setdefault("Version", "2012-10-17")
    policy["Statement"] = [*kept, ours]
    return json.dumps(policy, separators=(",", ":"))


def find_subscription(topic: Topic, queue_arn: str) -> str | None:
    """The ARN of the topic's SQS subscription delivering to ``queue_arn``, if any."""
    for subscription in list_subscriptions(topic):
        if subscription.get("Protocol") == _PROTOCOL and subscription.get("Endpoint") == queue_arn:
            return str(subscription["SubscriptionArn"])
    return None


def list_subscriptions(topic: Topic) -> list[dict[str, Any]]:
    """Every subscription of the topic (NotFound when there is no such topic), page by page."""
    request: dict[str, Any] = {"TopicArn": topic.arn()}
    found: list[dict[str, Any]] = []
    while True:
        with sqs_call(f"listing the subscriptions of SNS topic {topic.name!r}"):
            answer = topic.client.list_subscriptions_by_topic(**request)
        found.extend(answer.get("Subscriptions") or ())
        token = answer.get("NextToken")
        if not token:
            return found
        request["NextToken"] = token


def subscribe(topic: Topic, queue: Queue, filter_policy: str | None) -> str:
    """Subscribe ``queue`` to ``topic`` with raw delivery and ``filter_policy`` (None: none),
    or bring its existing subscription to that; the subscription ARN."""
    queue_arn = queue.attributes()["QueueArn"]
    with sqs_call(f"letting SNS topic {topic.name!r} send to SQS queue {queue.name!r}"):
        queue.client.set_queue_attributes(
            QueueUrl=queue.url(),
            Attributes={"Policy": queue_policy(queue.attributes().get("Policy"), queue_arn,
                                               topic.arn())},
        )
    queue.forget()
    existing = find_subscription(topic, queue_arn)
    if existing is None:
        attributes = {"RawMessageDelivery": "true"}
        if filter_policy is not None:
            attributes["FilterPolicyScope"] = "MessageAttributes"
            attributes["FilterPolicy"] = filter_policy
        with sqs_call(f"subscribing SQS queue {queue.name!r} to SNS topic {topic.name!r}"):
            answer = topic.client.subscribe(
                TopicArn=topic.arn(), Protocol=_PROTOCOL, Endpoint=queue_arn,
                Attributes=attributes, ReturnSubscriptionArn=True,
            )
        return str(answer["SubscriptionArn"])
    _update(topic, existing, filter_policy)
    return existing


def _update(topic: Topic, arn: str, filter_policy: str | None) -> None:
    client = topic.client
    what = f"updating the subscription {arn!r} of SNS topic {topic.name!r}"

    def set_attribute(name: str, value: str) -> None:
        with sqs_call(what):
            client.set_subscription_attributes(
                SubscriptionArn=arn, AttributeName=name, AttributeValue=value
            )

    set_attribute("RawMessageDelivery", "true")
    if filter_policy is not None:
        set_attribute("FilterPolicyScope", "MessageAttributes")
        set_attribute("FilterPolicy", filter_policy)
        return
    with sqs_call(what):
        current = client.get_subscription_attributes(SubscriptionArn=arn)
    if (current.get("Attributes") or {}).get("FilterPolicy"):
        # An empty policy removes the filter: every message is delivered again.
        set_attribute("FilterPolicy", "")


def unsubscribe(topic: Topic, queue: Queue) -> None:
    """Remove the topic's subscription delivering to ``queue`` (NotFound when none)."""
    arn = find_subscription(topic, queue.attributes()["QueueArn"])
    if arn is None:
        raise NotFound(
            f"SQS queue {queue.name!r} has no subscription to SNS topic {topic.name!r}"
        )
    with sqs_call(f"unsubscribing SQS queue {queue.name!r} from SNS topic {topic.name!r}"):
        topic.client.unsubscribe(SubscriptionArn=arn)
