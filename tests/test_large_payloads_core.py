"""Large payloads (claim check) on the in-memory and SQLite providers, with the stores the
core can run without a plugin: file://, gs:// (GCS emulator) and az:// (Azurite). S3 is
tested on the provider plugins, beside LocalStack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_contract_memory import MemoryHarness
from test_contract_sqlite import SqliteHarness

from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import (
    LargePayloads,
    PayloadLocation,
    PayloadStorage,
    payload_storage_for,
)


@pytest.fixture(scope="module", params=["file", "gs", "az"])
def payload_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PayloadStorage]:
    with payload_storage_for(request.param, tmp_path_factory.mktemp("payloads")) as storage:
        yield storage


@pytest.fixture(scope="module")
def database_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("sqlite") / "large-payloads.db")


class TestMemoryLargePayloads(LargePayloads):
    @pytest.fixture
    def harness(self) -> Harness:
        return MemoryHarness()

    @pytest.fixture
    def payload_location(self, payload_storage: PayloadStorage) -> PayloadLocation:
        return payload_storage.new_location()


class TestSqliteLargePayloads(LargePayloads):
    @pytest.fixture
    def harness(self, database_path: str) -> Harness:
        return SqliteHarness(database_path)

    @pytest.fixture
    def payload_location(self, payload_storage: PayloadStorage) -> PayloadLocation:
        return payload_storage.new_location()
