"""Large payloads (claim check) through SQS standard queues on LocalStack, with each store:
file://, s3:// (the same LocalStack), gs:// (GCS emulator) and az:// (Azurite)."""

from __future__ import annotations

import pytest
from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import LargePayloads
from conftest_driver import SqsHarness, aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]


class TestSqsLargePayloads(LargePayloads):
    fifty_mb_stores = ("s3",)  # the AWS extended clients' format, multipart upload

    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SqsHarness(endpoint_url)

    @pytest.fixture(scope="module")
    @classmethod
    def s3_endpoint(cls, endpoint_url: str) -> str:
        return endpoint_url  # the session's LocalStack serves S3 too
