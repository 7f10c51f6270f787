"""The contract suite against the local broker: queues, topic subscriptions,
session-enabled entities and duplicate-detecting entities (one harness each); and the
connection-fault cases on queues, with a FaultProxy between the SDK and the broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import quote

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

from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

NAMESPACE = "local"


class ServiceBusHarness(Harness):
    timer_slack = 0.5
    short_lease = 2.0
    supports_delayed_delivery = True
    supports_dead_letter = True
    #: Declare every destination with these settings, whatever the test asks.
    forced: ClassVar[dict[str, bool]] = {}

    def __init__(self, broker: ServiceBusBroker, *, topics: bool = False,
                 connection_string: str | None = None) -> None:
        self.broker = broker
        self.topics = topics
        self.supports_fan_out = topics
        # A delayed nack schedules a copy; on a topic it would reach every subscription,
        # and in a session it would land behind the session's later messages.
        self.supports_nack_delay = not topics and not self.forced.get("ordered")
        # connection_string: reach the broker another way (through a FaultProxy).
        connection_string = connection_string or broker.connection_string
        self.query = "connection_string=" + quote(connection_string, safe="")

    def url(self, name: str, subscription: str | None = None) -> str:
        tail = f"&subscription={subscription}" if subscription else ""
        return f"azuresb://{NAMESPACE}/{name}?{self.query}{tail}"

    def make(self, *, ordered: bool = False, deduplicated: bool = False,
             dead_letter_after: int | None = None, lease: float | None = None,
             subscriptions: int = 1) -> Destination:
        name = unique_name("sb")
        lease = lease or self.short_lease
        settings = dict(ordered=ordered, deduplicated=deduplicated,
                        dead_letter_after=dead_letter_after, lease=lease)
        settings.update(self.forced)
        if not self.topics:
            url = self.url(name)
            cloudqueue.declare(url, **settings)  # type: ignore[arg-type]
            return Destination(url, url, lease=lease, ordered=bool(settings["ordered"]),
                               deduplicated=bool(settings["deduplicated"]),
                               dead_letter_after=dead_letter_after)
        urls = [self.url(name, f"s{i}") for i in range(subscriptions)]
        for url in urls:
            cloudqueue.declare(url, **settings)  # type: ignore[arg-type]
        return Destination(self.url(name), urls[0], tuple(urls[1:]), lease=lease,
                           dead_letter_after=dead_letter_after)

    def missing_url(self) -> str:
        return self.url(unique_name("missing"))


class SessionHarness(ServiceBusHarness):
    """Every entity requires sessions: unkeyed messages share one default session."""

    supports_ordering = True
    forced: ClassVar[dict[str, bool]] = {"ordered": True}


class DeduplicatingHarness(ServiceBusHarness):
    supports_deduplication = True
    supports_ordering = True
    forced: ClassVar[dict[str, bool]] = {"deduplicated": True}


@pytest.fixture(scope="module")
def sb_broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker() as running:
        previous = os.environ.get(CA_FILE_ENV)
        os.environ[CA_FILE_ENV] = running.certificate_path
        try:
            yield running
        finally:
            if previous is None:
                os.environ.pop(CA_FILE_ENV, None)
            else:
                os.environ[CA_FILE_ENV] = previous
            with contextlib.suppress(Exception):
                servicebus_provider._PROVIDER.close()


class TestQueueContract(ContractSuite):
    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Harness:
        harness = ServiceBusHarness(sb_broker)
        harness.supports_ordering = True  # ordered=True declares a session-enabled queue
        harness.supports_deduplication = True
        return harness


class TestTopicContract(ContractSuite):
    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Harness:
        return ServiceBusHarness(sb_broker, topics=True)


class TestSessionQueueContract(ContractSuite):
    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Harness:
        return SessionHarness(sb_broker)


class TestDeduplicatingQueueContract(ContractSuite):
    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Harness:
        return DeduplicatingHarness(sb_broker)



class TestQueueConnectionFaults(ConnectionFaults):
    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Iterator[Harness]:
        with FaultProxy(sb_broker.host, sb_broker.port) as proxy:
            # AMQP and the administration surface share the broker's port: both go
            # through the proxy.
            through_proxy = sb_broker.connection_string.replace(
                f":{sb_broker.port};", f":{proxy.port};"
            )
            assert through_proxy != sb_broker.connection_string
            harness = ServiceBusHarness(sb_broker, connection_string=through_proxy)
            harness.fault_proxy = proxy
            yield harness


class TestSessionQueueConnectionFaults(ConnectionFaults):
    """On sessions a lost connection takes the session's lock with it: acks pending at
    the cut fail (reported), and those messages come back."""

    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Iterator[Harness]:
        with FaultProxy(sb_broker.host, sb_broker.port) as proxy:
            through_proxy = sb_broker.connection_string.replace(
                f":{sb_broker.port};", f":{proxy.port};"
            )
            harness = SessionHarness(sb_broker, connection_string=through_proxy)
            harness.fault_proxy = proxy
            yield harness
