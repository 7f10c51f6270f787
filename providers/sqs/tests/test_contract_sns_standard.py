"""The whole contract suite on an SNS standard topic with SQS subscriptions, against LocalStack."""

from __future__ import annotations

import pytest
from cloudqueue.testing.contract import ContractSuite, Harness
from conftest_driver import aws_environment, endpoint_url
from conftest_sns import SnsHarness

__all__ = ["aws_environment", "endpoint_url"]


class TestSnsStandardContract(ContractSuite):
    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SnsHarness(endpoint_url)
