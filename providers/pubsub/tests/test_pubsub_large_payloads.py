"""Large payloads (claim check) through the local Pub/Sub server, with each store:
file://, s3:// (LocalStack, from the SQS plugin's test tools), gs:// (GCS emulator) and
az:// (Azurite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import LargePayloads
from test_contract_pubsub import PubSubHarness, emulator, server

__all__ = ["emulator", "server"]  # the suite's Pub/Sub server, reached through the environment


class TestPubSubLargePayloads(LargePayloads):
    localstack_venv = Path(__file__).resolve().parents[3] / ".venv-localstack"

    @pytest.fixture
    def harness(self) -> Harness:
        return PubSubHarness()
