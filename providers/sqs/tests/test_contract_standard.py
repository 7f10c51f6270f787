"""The whole contract suite on an SQS standard queue, against LocalStack."""

from __future__ import annotations

import pytest
from cloudqueue.testing.contract import ContractSuite, Harness
from conftest_driver import SqsHarness, aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]


class TestSqsStandardContract(ContractSuite):
    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SqsHarness(endpoint_url)
