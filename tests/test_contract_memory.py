"""The contract suite on the in-memory provider, the reference implementation."""

from __future__ import annotations

import pytest

from cloudqueue.testing.contract import ContractSuite, DeclaringHarness, Harness


class MemoryHarness(DeclaringHarness):
    name_prefix = "mem"
    timer_slack = 0.2
    short_lease = 1.0
    supports_ordering = True
    supports_deduplication = True
    supports_delayed_delivery = True
    supports_dead_letter = True
    supports_fan_out = True
    # Operations: exact counts of every field, native peek, one-subscription redrive.
    stats_fields = frozenset(
        {"available", "in_flight", "delayed", "dead_letters", "oldest_age", "total_sent",
         "total_received"}
    )
    stats_exact = True
    native_peek = True
    redrive_subscription = True

    def url(self, name: str, subscription: str | None = None) -> str:
        return f"memory://{name}" + (f"?subscription={subscription}" if subscription else "")


class TestMemoryContract(ContractSuite):
    @pytest.fixture
    def harness(self) -> Harness:
        return MemoryHarness()
