"""The CloudEvents contract class on the built-in providers (memory and SQLite), until
ContractSuite includes it."""

from __future__ import annotations

import pytest
from test_contract_memory import MemoryHarness
from test_contract_sqlite import SqliteHarness

from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.cloudevents import CloudEvents


class TestMemoryCloudEvents(CloudEvents):
    @pytest.fixture
    def harness(self) -> Harness:
        return MemoryHarness()


class TestSqliteCloudEvents(CloudEvents):
    @pytest.fixture
    def harness(self, tmp_path_factory: pytest.TempPathFactory) -> Harness:
        return SqliteHarness(str(tmp_path_factory.mktemp("sqlite") / "events.db"))
