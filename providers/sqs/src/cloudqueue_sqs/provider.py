"""The Amazon SQS provider: ``sqs://<queue-name>[?region=&endpoint_url=&profile=]``.

Queues whose name ends in ``.fifo`` are FIFO queues (ordering keys become message
groups, deduplication ids become deduplication ids); all others are standard queues.
Credentials, region and endpoint come from boto3's own configuration (the credential
chain, ``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_SQS``...) unless the URL
names them. See docs/providers/sqs.md for the semantics and limits.

This module is the ``cloudqueue.providers`` entry point; it imports no SDK until a
queue is used.
"""

from __future__ import annotations

import json
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
from cloudqueue.errors import InvalidArgument, NotFound, Unsupported
from cloudqueue.hookspecs import hookimpl

from ._queues import Queue, QueueRegistry, dead_letter_twin, sqs_call, visibility_seconds
from ._sdk import SqsSdk

__all__ = ["PROVIDER", "SqsProvider", "cloudqueue_providers"]

#: Dead letters are kept for SQS's longest retention, 14 days, to leave time to look.
_DEAD_LETTER_RETENTION = str(14 * 86400)
#: The largest maxReceiveCount a redrive policy takes.
_MAX_RECEIVE_COUNT = 1000


class SqsProvider(Provider):
    schemes = ("sqs",)
    distribution = "cloudqueue-sqs"
    parameters = frozenset({"region", "endpoint_url", "profile"})
    # Claim checks in S3 travel as the AWS extended client's pointers, so that its
    # Java and Python consumers read ours and we read theirs (cloudqueue.offload).
    aws_extended_payloads = True
    sdk_type = SqsSdk

    def __init__(self) -> None:
        self._queues = QueueRegistry()

    @property
    def queues(self) -> QueueRegistry:
        """The clients and queues, shared with the SNS provider (its subscriptions are
        queues of this one)."""
        return self._queues

    @contextmanager
    def registry(self, url: Url) -> Iterator[QueueRegistry]:
        """The clients and queues for one call on ``url``: the shared registry, or for
        the user's :class:`SqsSdk` a fresh one, closed on exit with the clients it built."""
        if url.sdk is None:
            yield self._queues
            return
        registry = self.driver_registry(url)
        try:
            yield registry
        finally:
            registry.close()

    def driver_registry(self, url: Url) -> QueueRegistry:
        """The registry a driver on ``url`` uses: for the user's :class:`SqsSdk` one of
        its own, which the driver closes (and with it the clients built for it)."""
        if url.sdk is None:
            return self._queues
        assert isinstance(url.sdk, SqsSdk)  # the core checked it against sdk_type
        return QueueRegistry(url.sdk)

    def open_topic(self, url: Url) -> TopicDriver:
        from ._driver import SqsTopic

        registry = self.driver_registry(url)
        return SqsTopic(registry.queue(url), owned=registry if url.sdk else None)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        from ._driver import SqsSubscription

        registry = self.driver_registry(url)
        return SqsSubscription(registry.queue(url), owned=registry if url.sdk else None)

    def capabilities(self, url: Url) -> Capabilities:
        from ._driver import capabilities_for

        with self.registry(url) as registry:
            return capabilities_for(registry.queue(url).fifo)

    def declare(self, url: Url, declaration: Declaration) -> None:
        with self.registry(url) as registry:
            self._declare(registry, url, declaration)

    def _declare(self, registry: QueueRegistry, url: Url, declaration: Declaration) -> None:
        queue = registry.queue(url)
        if not queue.fifo and (declaration.ordered or declaration.deduplicated):
            feature = "ordered delivery" if declaration.ordered else "deduplication"
            raise Unsupported(
                f"{feature} needs an SQS FIFO queue; name the queue {queue.name + '.fifo'!r}"
            )
        visibility = visibility_seconds(declaration.lease)
        if visibility > 43_200:
            raise InvalidArgument(
                f"lease of {declaration.lease:g}s exceeds 43200s, "
                "the longest SQS visibility timeout"
            )
        after = declaration.dead_letter_after
        if after is not None and not 1 <= after <= _MAX_RECEIVE_COUNT:
            # Checked before anything is created: the dead-letter twin would come first.
            raise InvalidArgument(
                f"dead_letter_after={after} is outside 1..{_MAX_RECEIVE_COUNT}, "
                "the range of SQS's maxReceiveCount"
            )
        settings = {"VisibilityTimeout": str(visibility)}
        if queue.fifo:
            settings["ContentBasedDeduplication"] = "true" if declaration.deduplicated else "false"
        if declaration.dead_letter_after is not None:
            twin = registry.queue(url, dead_letter_twin(queue.name))
            self._create(twin, {"MessageRetentionPeriod": _DEAD_LETTER_RETENTION})
            arn = twin.attributes()["QueueArn"]
            settings["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": str(declaration.dead_letter_after)}
            )
        self._create(queue, settings)

    @staticmethod
    def _create(queue: Queue, settings: dict[str, str]) -> None:
        """Create the queue, or bring an existing one to ``settings``."""
        # FifoQueue is fixed at creation; everything else is set afterwards, which
        # works the same for a new queue and an existing one with other settings.
        kind = {"FifoQueue": "true"} if queue.fifo else {}
        with sqs_call(f"creating SQS queue {queue.name!r}"):
            queue.client.create_queue(QueueName=queue.name, Attributes=kind)
        queue.forget()
        with sqs_call(f"configuring SQS queue {queue.name!r}"):
            queue.client.set_queue_attributes(QueueUrl=queue.url(), Attributes=settings)
        queue.forget()

    def dead_letter_url(self, url: Url) -> Url:
        with self.registry(url) as registry:
            queue = registry.queue(url)
            try:
                target = queue.redrive_target()
            except NotFound:
                target = None
        return url.replace(host=target or dead_letter_twin(queue.name), path="")

    def purge(self, url: Url) -> None:
        with self.registry(url) as registry:
            queue = registry.queue(url)
            with sqs_call(f"purging SQS queue {queue.name!r}"):
                queue.client.purge_queue(QueueUrl=queue.url())

    def delete(self, url: Url) -> None:
        with self.registry(url) as registry:
            queue = registry.queue(url)
            try:
                with sqs_call(f"deleting SQS queue {queue.name!r}"):
                    queue.client.delete_queue(QueueUrl=queue.url())
            finally:
                queue.forget()

    # -- operations (cloudqueue.ops) -------------------------------------------------
    # No native peek (SQS has none): cloudqueue.ops receives and releases. The default
    # open_redrive_target is right: SQS queues have no subscriptions.

    def stats(self, url: Url) -> QueueStats:
        from . import _ops

        with self.registry(url) as registry:
            return _ops.stats(registry, url)

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        from . import _ops

        with self.registry(url) as registry:
            return _ops.dead_letter_facts(registry, url, delivery)

    def redrive_source(self, url: Url) -> Url:
        from . import _ops

        with self.registry(url) as registry:
            return _ops.redrive_source(registry, url)

    def close(self) -> None:
        self._queues.close()


#: The one instance, registered here and shared by :mod:`cloudqueue_sqs.sns`.
PROVIDER = SqsProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [PROVIDER]

