"""Large payloads (claim check) through SNS standard topics with SQS subscriptions on
LocalStack, with each store: file://, s3:// (the same LocalStack), gs:// (GCS emulator)
and az:// (Azurite)."""

from __future__ import annotations

import pytest
from cloudqueue.testing.contract import Harness
from conftest_driver import aws_environment, endpoint_url
from conftest_sns import SnsHarness
from test_sqs_large_payloads import LargePayloadsOnLocalStack

__all__ = ["aws_environment", "endpoint_url"]


class TestSnsLargePayloads(LargePayloadsOnLocalStack):
    # SQS runs the 50 MB case on s3, the same pointer format: here the file store's.

    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SnsHarness(endpoint_url)
