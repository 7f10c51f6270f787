"""Declaring and deleting SNS topics and subscriptions (the queues behind them included)."""

from __future__ import annotations

import contextlib
import dataclasses

from cloudqueue.driver import Declaration, Url
from cloudqueue.errors import InvalidArgument, NotFound, Unsupported

from ._queues import Queue, QueueRegistry, dead_letter_twin, sqs_call
from ._subscriptions import list_subscriptions, subscribe, topic_queues, unsubscribe
from ._topics import Topic
from .provider import SqsProvider

__all__ = ["declare_subscription", "declare_topic", "delete_subscription", "delete_topic"]


def _refuse_fifo_features(topic: Topic, declaration: Declaration) -> None:
    if not topic.fifo and (declaration.ordered or declaration.deduplicated):
        feature = "ordered delivery" if declaration.ordered else "deduplication"
        raise Unsupported(
            f"{feature} needs an SNS FIFO topic; name the topic {topic.name + '.fifo'!r}"
        )


def declare_topic(topic: Topic, declaration: Declaration) -> None:
    _refuse_fifo_features(topic, declaration)
    if declaration.dead_letter_after is not None:
        raise InvalidArgument(
            "dead letters belong to a subscription of an SNS topic: declare "
            "sns://<topic>?subscription=<name> with dead_letter_after"
        )
    _create_topic(topic, deduplicated=declaration.deduplicated)
    if topic.fifo:
        # FifoTopic is fixed at creation; content-based deduplication can change.
        with sqs_call(f"configuring SNS topic {topic.name!r}"):
            topic.client.set_topic_attributes(
                TopicArn=topic.arn(), AttributeName="ContentBasedDeduplication",
                AttributeValue="true" if declaration.deduplicated else "false",
            )
        topic.forget()


def _create_topic(topic: Topic, *, deduplicated: bool) -> None:
    attributes = {}
    if topic.fifo:
        attributes = {
            "FifoTopic": "true",
            "ContentBasedDeduplication": "true" if deduplicated else "false",
        }
    with sqs_call(f"creating SNS topic {topic.name!r}"):
        topic.client.create_topic(Name=topic.name, Attributes=attributes)
    topic.forget()


def declare_subscription(
    sqs: SqsProvider, topic: Topic, queue_url: Url, queue: Queue, declaration: Declaration
) -> None:
    """The topic if missing (an existing one is left as it is: its other subscriptions
    depend on it), the queue by the SQS plugin's own rules, the queue policy and the
    subscription with raw delivery and the filter."""
    _refuse_fifo_features(topic, declaration)
    policy = None
    if declaration.filter is not None:
        # Translated first: a filter SNS cannot express creates nothing.
        from ._filter_policy import filter_policy

        policy = filter_policy(declaration.filter)
    try:
        topic.attributes()
    except NotFound:
        _create_topic(topic, deduplicated=declaration.deduplicated)
    sqs.declare(queue_url, dataclasses.replace(declaration, filter=None))
    subscribe(topic, queue, policy)


def delete_subscription(topic: Topic, queue: Queue) -> None:
    """Unsubscribe and delete the queue; its dead letters stay in the twin. NotFound when
    there was neither."""
    unsubscribed = False
    with contextlib.suppress(NotFound):  # the topic or the subscription is gone already
        unsubscribe(topic, queue)
        unsubscribed = True
    try:
        with sqs_call(f"deleting SQS queue {queue.name!r}"):
            queue.client.delete_queue(QueueUrl=queue.url())
    except NotFound:
        if not unsubscribed:
            raise
    finally:
        queue.forget()


def delete_topic(topic: Topic, queues: QueueRegistry, url: Url) -> None:
    """Every SQS subscription's queue named by the rule (and its twin), then the topic.

    SNS deletes a missing topic without complaint, so its existence is checked first.
    """
    topic.forget()
    topic.attributes()  # NotFound when there is no such topic
    subscriptions = list_subscriptions(topic)
    by_name = {
        str(found.get("Endpoint") or "").rsplit(":", 1)[-1]: found
        for found in subscriptions if found.get("Protocol") == "sqs"
    }
    for name in topic_queues(topic.name, list(by_name)):
        queue = queues.queue(url, name)
        try:
            if queue.attributes().get("QueueArn") != by_name[name].get("Endpoint"):
                continue  # a queue of that name elsewhere (another account or region)
        except NotFound:
            continue
        with sqs_call(f"unsubscribing SQS queue {name!r} from SNS topic {topic.name!r}"):
            topic.client.unsubscribe(SubscriptionArn=by_name[name]["SubscriptionArn"])
        for doomed in (queue, queues.queue(url, dead_letter_twin(name))):
            with contextlib.suppress(NotFound), sqs_call(f"deleting SQS queue {doomed.name!r}"):
                doomed.client.delete_queue(QueueUrl=doomed.url())
            doomed.forget()
    with sqs_call(f"deleting SNS topic {topic.name!r}"):
        topic.client.delete_topic(TopicArn=topic.arn())
    topic.forget()
