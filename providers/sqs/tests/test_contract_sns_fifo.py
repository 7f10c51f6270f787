"""The whole contract suite on an SNS FIFO topic with FIFO SQS subscriptions, against LocalStack."""

from __future__ import annotations

import pytest
from cloudqueue.testing.contract import ContractSuite, Harness
from conftest_driver import aws_environment, endpoint_url
from conftest_sns import SnsFifoHarness

__all__ = ["aws_environment", "endpoint_url"]


class TestSnsFifoContract(ContractSuite):
    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SnsFifoHarness(endpoint_url)
