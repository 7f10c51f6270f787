"""The contract suite against the local Pub/Sub server, through the official client.

Three harnesses, because what a Pub/Sub consumer can do depends on its subscription:

- plain: unordered subscriptions without a dead-letter policy (no delivery attempt counter,
  dead letters Unsupported);
- ordered: every subscription has message ordering on;
- dead-letter: every subscription has a dead-letter policy (attempts counted, dead letters
  forwarded to ``<topic>-dead-letter``).

Pub/Sub's shortest ack deadline is 10 s, so the lease-expiry cases take over 10 s each.

``TestConnectionFaults`` runs the connection-fault cases with a FaultProxy between the
client and the server (``PUBSUB_EMULATOR_HOST`` names the proxy).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cloudqueue
import pytest
from cloudqueue.filters import Filter
from cloudqueue.testing.contract import (
    ConnectionFaults,
    ContractSuite,
    Destination,
    FilteringHarness,
    Harness,
    unique_name,
)
from cloudqueue.testing.faultproxy import FaultProxy

from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "contract-project"
#: Pub/Sub's minimum ack deadline, and the lease the expiry cases must outlast.
SHORT_LEASE = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[PubSubServer]:
    # A short server-side Pull wait keeps "expect nothing" cases fast; the driver pulls again
    # until the asked wait is over.
    with PubSubServer(pull_wait_seconds=0.5) as running:
        yield running


@pytest.fixture(autouse=True)
def emulator(server: PubSubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)


class PubSubHarness(Harness, FilteringHarness):
    timer_slack = 0.5
    short_lease = SHORT_LEASE
    supports_ordering = True  # topics take ordering keys; make(ordered=True) honours them
    supports_fan_out = True
    supports_dead_letter = False
    supports_delivery_attempt = False
    # Its subscriptions have no dead-letter policy, but the provider can declare one
    # (DeadLetterHarness runs the suite on such subscriptions).
    provider_declares_dead_letters = True
    dead_letter_after_for_tests = 5  # Pub/Sub's minimum
    # Operations: the API has no backlog counts (Cloud Monitoring has them), so stats know
    # nothing; no native peek; a redrive cannot publish to one subscription of several.
    # The SIGKILL case's process finds the server through PUBSUB_EMULATOR_HOST, which the
    # autouse fixture sets in os.environ: the default process_env() carries it.
    stats_fields: frozenset[str] = frozenset()
    native_peek = False
    redrive_subscription = False
    #: Subscriptions made by this harness are ordered unless asked otherwise.
    always_ordered = False
    #: Every subscription gets this dead-letter policy unless asked for another.
    default_dead_letter_after: int | None = None

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
        topic = unique_name("t")
        producer_url = f"pubsub://{PROJECT}/{topic}"
        urls = [f"{producer_url}?subscription={topic}-s{i}" for i in range(subscriptions)]
        after = dead_letter_after or self.default_dead_letter_after
        for url in urls:
            cloudqueue.declare(
                url, ordered=ordered or self.always_ordered, deduplicated=deduplicated,
                dead_letter_after=after, lease=lease,
            )
        return Destination(
            producer_url, urls[0], tuple(urls[1:]), lease=lease, ordered=ordered,
            deduplicated=deduplicated, dead_letter_after=after,
        )

    def make_filtered(self, filters: Sequence[Filter | None]) -> Destination:
        # A Pub/Sub filter is set when the subscription is created and never changes.
        topic = unique_name("t")
        producer_url = f"pubsub://{PROJECT}/{topic}"
        urls = [f"{producer_url}?subscription={topic}-f{i}" for i in range(len(filters))]
        after = self.default_dead_letter_after
        for url, wanted in zip(urls, filters, strict=True):
            cloudqueue.declare(
                url, ordered=self.always_ordered, dead_letter_after=after,
                lease=self.short_lease, filter=wanted,
            )
        return Destination(
            producer_url, urls[0], tuple(urls[1:]), lease=self.short_lease,
            ordered=self.always_ordered, dead_letter_after=after,
        )

    def missing_url(self) -> str:
        return f"pubsub://{PROJECT}/{unique_name('missing')}?subscription=nobody"


class OrderedHarness(PubSubHarness):
    always_ordered = True


class DeadLetterHarness(PubSubHarness):
    supports_dead_letter = True
    supports_delivery_attempt = True
    default_dead_letter_after = 5  # Pub/Sub's smallest limit


class TestPlainSubscription(ContractSuite):
    @pytest.fixture
    def harness(self) -> Harness:
        return PubSubHarness()


class TestOrderedSubscription(ContractSuite):
    @pytest.fixture
    def harness(self) -> Harness:
        return OrderedHarness()


class TestDeadLetterSubscription(ContractSuite):
    @pytest.fixture
    def harness(self) -> Harness:
        return DeadLetterHarness()

    def test_dead_letter_after_below_the_minimum_is_refused(self, make: object) -> None:
        with pytest.raises(cloudqueue.InvalidArgument) as info:
            make(dead_letter_after=2)  # type: ignore[operator]
        assert "5..100" in str(info.value)


class TestConnectionFaults(ConnectionFaults):
    @pytest.fixture
    def harness(self, server: PubSubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
        with FaultProxy(server.host, server.port) as proxy:
            # Drivers opened from now on (declare included) talk through the proxy.
            monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{proxy.port}")
            harness = PubSubHarness()
            harness.fault_proxy = proxy
            yield harness
