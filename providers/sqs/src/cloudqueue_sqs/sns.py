"""The Amazon SNS provider: ``sns://<topic>[?subscription=<name>&region=&endpoint_url=&profile=&account=]``.

Producers publish to the topic; a consumer reads one subscription, which is the SQS queue
``<topic>-<subscription>`` (``orders.fifo`` + ``billing`` -> ``orders-billing.fifo``)
subscribed with raw message delivery, so bodies and attributes arrive as sent. Topics
named ``*.fifo`` are FIFO topics with FIFO queues behind them. ``account`` names the
topic's AWS account (12 digits) when it is not the caller's. See docs/providers/sns.md.

This module is the ``cloudqueue.providers`` entry point; it imports no SDK until a topic
is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cloudqueue.driver import (
    Capabilities,
    DeadLetterFacts,
    Declaration,
    Delivery,
    Provider,
    QueueStats,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.errors import InvalidArgument
from cloudqueue.hookspecs import hookimpl

from ._queues import Queue, QueueRegistry
from ._sdk import SqsSdk
from ._subscriptions import subscription_queue_name
from ._topics import TopicRegistry
from .provider import PROVIDER, SqsProvider

__all__ = ["SnsProvider", "cloudqueue_providers"]

#: The URL parameters that select an AWS endpoint, carried over to ``sqs://`` URLs.
_ENDPOINT_PARAMETERS = ("region", "endpoint_url", "profile")


class SnsProvider(Provider):
    schemes = ("sns",)
    distribution = "cloudqueue-sqs"
    parameters = frozenset({"subscription", "region", "endpoint_url", "profile", "account"})
    supports_filters = True
    # Claim checks in S3 travel as the AWS extended clients' pointers (SNS's client
    # writes the same format as SQS's), so their consumers read ours and we read theirs.
    aws_extended_payloads = True
    # One bundle for both schemes: a subscription's consumer reads an SQS queue.
    sdk_type = SqsSdk

    def __init__(self, sqs: SqsProvider) -> None:
        # The queues behind subscriptions are the SQS provider's: one client cache, and
        # its declare rules, operations and dead-letter handling apply unchanged.
        self._sqs = sqs
        self._queues: QueueRegistry = sqs.queues
        self._topics = TopicRegistry(self._queues)

    # -- registries ------------------------------------------------------------------

    def driver_registry(self, url: Url) -> TopicRegistry:
        """The topics (and, through them, queues) a driver on ``url`` uses: for the
        user's :class:`SqsSdk` registries of its own, closed with the driver."""
        if url.sdk is None:
            return self._topics
        return TopicRegistry(self._sqs.driver_registry(url))

    @contextmanager
    def registry(self, url: Url) -> Iterator[TopicRegistry]:
        """The registry for one call on ``url`` (see :meth:`SqsProvider.registry`)."""
        if url.sdk is None:
            yield self._topics
            return
        topics = self.driver_registry(url)
        try:
            yield topics
        finally:
            topics.close_all()

    # -- URLs ------------------------------------------------------------------------

    def queue_url(self, url: Url) -> Url:
        """The ``sqs://`` URL of the queue behind the subscription ``url`` names."""
        subscription = url.subscription
        if subscription is None:
            raise InvalidArgument(
                f"{str(url)!r:.300} names an SNS topic; consumers, purge and dead letters "
                "need one of its subscriptions: sns://<topic>?subscription=<name>"
            )
        # The shared registry only checks the URL here (the name, endpoint and account
        # parameters): nothing it caches holds a client.
        name = subscription_queue_name(self._topics.topic(url).name, subscription)
        params = {key: url.params[key] for key in _ENDPOINT_PARAMETERS if key in url.params}
        return Url(scheme="sqs", host=name, path="", params=params, sdk=url.sdk)

    def _queue(self, topics: TopicRegistry, url: Url) -> Queue:
        return topics.queues.queue(self.queue_url(url))

    # -- drivers -----------------------------------------------------------------------

    def open_topic(self, url: Url) -> TopicDriver:
        from ._sns_driver import SnsTopic

        topics = self.driver_registry(url)
        return SnsTopic(topics.topic(url), owned=topics if url.sdk else None)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        from ._sns_driver import SnsSubscription

        topics = self.driver_registry(url)
        topic = topics.topic(url)
        owned = topics.queues if url.sdk else None
        return SnsSubscription(self._queue(topics, url), topic.name, owned=owned)

    def capabilities(self, url: Url) -> Capabilities:
        from ._sns_driver import topic_capabilities

        with self.registry(url) as topics:
            return topic_capabilities(topics.topic(url).fifo)

    # -- provisioning -------------------------------------------------------------------

    def declare(self, url: Url, declaration: Declaration) -> None:
        from . import _provisioning

        with self.registry(url) as topics:
            topic = topics.topic(url)
            if url.subscription is None:
                _provisioning.declare_topic(topic, declaration)
                return
            _provisioning.declare_subscription(
                self._sqs, topic, self.queue_url(url), self._queue(topics, url), declaration
            )

    def dead_letter_url(self, url: Url) -> Url:
        return self._sqs.dead_letter_url(self.queue_url(url))

    def purge(self, url: Url) -> None:
        self._sqs.purge(self.queue_url(url))

    def delete(self, url: Url) -> None:
        from . import _provisioning

        with self.registry(url) as topics:
            topic = topics.topic(url)
            if url.subscription is None:
                _provisioning.delete_topic(topic, topics.queues, url)
            else:
                _provisioning.delete_subscription(topic, self._queue(topics, url))

    # -- operations (cloudqueue.ops): the subscription's queue, as SQS reads it ----------

    def stats(self, url: Url) -> QueueStats:
        return self._sqs.stats(self.queue_url(url))

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        return self._sqs.dead_letter_facts(self.queue_url(url), delivery)

    def redrive_source(self, url: Url) -> Url:
        # A subscription's dead letters are the sqs:// twin (see dead_letter_url), so a
        # redrive starts there (with the SQS provider); an sns:// URL is never one.
        raise InvalidArgument(
            f"{str(url)!r:.300} is not a dead-letter destination: the dead letters of an SNS "
            "subscription are an SQS queue, cloudqueue.dead_letter_url(<subscription URL>)"
        )

    def open_redrive_target(self, url: Url) -> TopicDriver:
        if url.subscription is None:
            return self.open_topic(url)
        # Sending to the subscription's queue reaches that subscription only.
        return self._sqs.open_topic(self.queue_url(url))

    def close(self) -> None:
        self._topics.close()


_PROVIDER = SnsProvider(PROVIDER)


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]

