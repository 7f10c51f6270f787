"""Large payloads (claim check) on the in-memory and SQLite providers, with the stores the
core can run without a plugin: file://, gs:// (GCS emulator) and az:// (Azurite). S3 is
tested on the provider plugins, beside LocalStack."""

from __future__ import annotations

import pytest
from test_contract_memory import MemoryHarness
from test_contract_sqlite import SqliteHarness

from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import LargePayloads

CORE_STORES = ("file", "gs", "az")


@pytest.fixture(scope="module")
def database_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("sqlite") / "large-payloads.db")


class TestMemoryLargePayloads(LargePayloads):
    payload_stores = CORE_STORES
    fifty_mb_stores = ("gs",)  # resumable uploads to the emulator

    @pytest.fixture
    def harness(self) -> Harness:
        return MemoryHarness()


class TestSqliteLargePayloads(LargePayloads):
    payload_stores = CORE_STORES
    fifty_mb_stores = ("az",)  # block uploads to Azurite

    @pytest.fixture
    def harness(self, database_path: str) -> Harness:
        return SqliteHarness(database_path)
