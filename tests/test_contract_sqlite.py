"""The contract suite on the SQLite provider, against a real file per test session."""

from __future__ import annotations

import pytest

from cloudqueue.testing.contract import ContractSuite, DeclaringHarness, Harness


class SqliteHarness(DeclaringHarness):
    name_prefix = "sql"
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

    def __init__(self, path: str) -> None:
        self.base = f"sqlite:///{path}"  # path is absolute: four slashes in all

    def url(self, name: str, subscription: str | None = None) -> str:
        return f"{self.base}?queue={name}" + (f"&subscription={subscription}" if subscription else "")


@pytest.fixture(scope="module")
def database_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("sqlite") / "contract.db")


class TestSqliteContract(ContractSuite):
    @pytest.fixture
    def harness(self, database_path: str) -> Harness:
        return SqliteHarness(database_path)
