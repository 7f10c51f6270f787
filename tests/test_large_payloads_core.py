"""Large payloads (claim check) on the in-memory and SQLite providers, with every store:
file://, s3:// (LocalStack, from the SQS plugin's test tools, which the README's test
command installs), gs:// (GCS emulator) and az:// (Azurite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_contract_memory import MemoryHarness
from test_contract_sqlite import SqliteHarness

from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import LargePayloads

#: Where scripts/test installs LocalStack (for s3://).
LOCALSTACK_VENV = Path(__file__).resolve().parents[1] / ".venv-localstack"


@pytest.fixture(scope="module")
def database_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("sqlite") / "large-payloads.db")


class TestMemoryLargePayloads(LargePayloads):
    localstack_venv = LOCALSTACK_VENV

    @pytest.fixture
    def harness(self) -> Harness:
        return MemoryHarness()


class TestSqliteLargePayloads(LargePayloads):
    localstack_venv = LOCALSTACK_VENV

    @pytest.fixture
    def harness(self, database_path: str) -> Harness:
        return SqliteHarness(database_path)
