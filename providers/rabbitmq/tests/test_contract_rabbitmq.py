"""The contract suite against a real rabbitmq-server, through aio-pika.

Two harnesses: quorum queues (``?queue=``), and topics, where every destination is a fanout
exchange with subscription queues (``?topic=&subscription=``), so that the whole suite also
runs through exchanges and bindings. ``TestConnectionFaults`` puts a FaultProxy between
the client and the broker.

RabbitMQ has no per-queue lease: the consumer's lease is the URL's ``lease`` parameter, so
the harnesses spell the lease they make into the consumer URLs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import cloudqueue
import pytest
from cloudqueue.testing.contract import (
    ConnectionFaults,
    ContractSuite,
    Destination,
    Harness,
    unique_name,
)
from cloudqueue.testing.faultproxy import FaultProxy


class _Server(Protocol):
    host: str
    port: int
    user: str
    password: str


class QueueHarness(Harness):
    timer_slack = 0.5
    short_lease = 1.0
    supports_dead_letter = True
    supports_fan_out = True
    # A headers exchange cannot express prefixes or absence: filtered declares are refused.
    supports_filters = False
    # Wait queues whose TTL dead-letters back (cloudqueue_rabbitmq._delay).
    supports_nack_delay = True
    supports_delayed_delivery = True
    # A redrive publishes straight to the subscription's own queue.
    redrive_subscription = True

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url  # amqp://user:password@host:port/ (default vhost)

    def _consumer(self, query: str, lease: float) -> str:
        return f"{self.base_url}?{query}&lease={lease:g}"

    def make(
        self,
        *,
        ordered: bool = False,
        deduplicated: bool = False,
        dead_letter_after: int | None = None,
        lease: float | None = None,
        subscriptions: int = 1,
    ) -> Destination:
        lease = lease or self.short_lease
        if subscriptions == 1 and not self.topics_only:
            name = unique_name("q")
            producer_url = f"{self.base_url}?queue={name}"
            consumer_urls = [self._consumer(f"queue={name}", lease)]
        else:
            name = unique_name("t")
            producer_url = f"{self.base_url}?topic={name}"
            consumer_urls = [
                self._consumer(f"topic={name}&subscription=s{index}", lease)
                for index in range(subscriptions)
            ]
        for url in consumer_urls:
            cloudqueue.declare(
                url, ordered=ordered, deduplicated=deduplicated,
                dead_letter_after=dead_letter_after, lease=lease,
            )
        return Destination(
            producer_url, consumer_urls[0], tuple(consumer_urls[1:]), lease=lease,
            ordered=ordered, deduplicated=deduplicated, dead_letter_after=dead_letter_after,
        )

    #: Every destination is a topic (fanout exchange) with subscription queues.
    topics_only = False

    def missing_url(self) -> str:
        return f"{self.base_url}?queue={unique_name('missing')}"

    def cleanup(self, destination: Destination) -> None:
        for url in (destination.consumer_url, *destination.other_subscriptions,
                    destination.producer_url):
            with contextlib.suppress(cloudqueue.QueueError):
                cloudqueue.delete(url)


class TopicHarness(QueueHarness):
    topics_only = True


class TestQuorumQueues(ContractSuite):
    @pytest.fixture
    def harness(self, rabbitmq_url: str) -> Harness:
        return QueueHarness(rabbitmq_url)


class TestTopicSubscriptions(ContractSuite):
    @pytest.fixture
    def harness(self, rabbitmq_url: str) -> Harness:
        return TopicHarness(rabbitmq_url)


class TestConnectionFaults(ConnectionFaults):
    @pytest.fixture
    def harness(self, rabbitmq_server: _Server) -> Iterator[Harness]:
        with FaultProxy(rabbitmq_server.host, rabbitmq_server.port) as proxy:
            user, password = rabbitmq_server.user, rabbitmq_server.password
            harness = QueueHarness(f"amqp://{user}:{password}@127.0.0.1:{proxy.port}/")
            harness.fault_proxy = proxy
            yield harness
