"""The whole contract suite on an SQS standard queue, against LocalStack, and the
connection-fault cases with a FaultProxy between boto3 and LocalStack."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from cloudqueue.testing.contract import ConnectionFaults, ContractSuite, Harness
from cloudqueue.testing.faultproxy import FaultProxy
from conftest_driver import SqsHarness, aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]


class TestSqsStandardContract(ContractSuite):
    @pytest.fixture
    def harness(self, endpoint_url: str) -> Harness:
        return SqsHarness(endpoint_url)


class TestSqsConnectionFaults(ConnectionFaults):
    @pytest.fixture
    def harness(self, endpoint_url: str) -> Iterator[Harness]:
        # Queues are declared, used and deleted through the proxy: their URLs name its port.
        with FaultProxy("127.0.0.1", urlsplit(endpoint_url).port or 80) as proxy:
            harness = SqsHarness(f"http://127.0.0.1:{proxy.port}")
            harness.fault_proxy = proxy
            yield harness
