"""Large payloads (claim check) through the local Service Bus broker (queues), with each
store: file://, s3:// (LocalStack, from the SQS plugin's test tools), gs:// (GCS emulator)
and az:// (Azurite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import LargePayloads
from test_contract_servicebus import ServiceBusHarness, sb_broker

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

__all__ = ["sb_broker"]


class TestServiceBusLargePayloads(LargePayloads):
    localstack_venv = Path(__file__).resolve().parents[3] / ".venv-localstack"

    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Harness:
        return ServiceBusHarness(sb_broker)
