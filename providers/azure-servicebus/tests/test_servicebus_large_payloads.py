"""Large payloads (claim check) through the local Service Bus broker (queues), with each
store: file://, s3:// (LocalStack, from the SQS plugin's test tools), gs:// (GCS emulator)
and az:// (Azurite)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import (
    STORE_SCHEMES,
    LargePayloads,
    PayloadLocation,
    PayloadStorage,
    payload_storage_for,
)
from cloudqueue_sqs.testing import LocalStack, install_localstack
from test_contract_servicebus import ServiceBusHarness, sb_broker

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

__all__ = ["sb_broker"]

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """LocalStack for s3:// (reused when ``CLOUDQUEUE_SQS_ENDPOINT`` names a running one)."""
    if os.environ.get("CLOUDQUEUE_SQS_ENDPOINT"):
        server = LocalStack()
    else:
        venv = Path(os.environ.get("CLOUDQUEUE_LOCALSTACK_VENV") or REPO_ROOT / ".venv-localstack")
        install_localstack(venv)
        server = LocalStack(venv)
    with server:
        yield server.endpoint_url


@pytest.fixture(scope="module", params=STORE_SCHEMES)
def payload_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PayloadStorage]:
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    with payload_storage_for(
        request.param, tmp_path_factory.mktemp("payloads"), s3_endpoint=endpoint
    ) as storage:
        yield storage


class TestServiceBusLargePayloads(LargePayloads):
    @pytest.fixture
    def harness(self, sb_broker: ServiceBusBroker) -> Harness:
        return ServiceBusHarness(sb_broker)

    @pytest.fixture
    def payload_location(self, payload_storage: PayloadStorage) -> PayloadLocation:
        return payload_storage.new_location()
