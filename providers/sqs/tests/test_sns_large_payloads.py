"""Large payloads (claim check) through SNS standard topics with SQS subscriptions on
LocalStack, with each store: file://, s3:// (the same LocalStack), gs:// (GCS emulator)
and az:// (Azurite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import (
    STORE_SCHEMES,
    LargePayloads,
    PayloadLocation,
    PayloadStorage,
    payload_storage_for,
)
from conftest_driver import aws_environment, endpoint_url
from conftest_sns import SnsHarness

__all__ = ["aws_environment", "endpoint_url"]


@pytest.fixture(scope="module", params=STORE_SCHEMES)
def payload_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, endpoint_url: str
) -> Iterator[PayloadStorage]:
    with payload_storage_for(
        request.param, tmp_path_factory.mktemp("payloads"), s3_endpoint=endpoint_url
    ) as storage:
        yield storage


class TestSnsLargePayloads(LargePayloads):
    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SnsHarness(endpoint_url)

    @pytest.fixture
    def payload_location(self, payload_storage: PayloadStorage) -> PayloadLocation:
        return payload_storage.new_location()
