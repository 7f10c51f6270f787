"""Large payloads (claim check) through SQS standard queues on LocalStack, with each store:
file://, s3:// (the same LocalStack), gs:// (GCS emulator) and az:// (Azurite)."""

from __future__ import annotations

import pytest
from cloudqueue.testing.contract import Harness
from cloudqueue.testing.contract.large_payloads import LargePayloads
from conftest_driver import SqsHarness, aws_environment, endpoint_url

__all__ = ["LargePayloadsOnLocalStack", "aws_environment", "endpoint_url"]


class LargePayloadsOnLocalStack(LargePayloads):
    """The cases beside the session's LocalStack, whose S3 holds the s3:// locations
    (the SNS module runs them too)."""

    @pytest.fixture(scope="module")
    @classmethod
    def s3_endpoint(cls, endpoint_url: str) -> str:
        return endpoint_url


class TestSqsLargePayloads(LargePayloadsOnLocalStack):

    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SqsHarness(endpoint_url)
