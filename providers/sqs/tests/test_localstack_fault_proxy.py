"""boto3 against LocalStack through the core FaultProxy: a cut fails requests, then they recover.

This is the set-up the provider's reliability tests use; it checks that the two tools fit.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from cloudqueue_sqs.testing import LocalStack

faultproxy = pytest.importorskip("cloudqueue.testing.faultproxy")


def client(port: int, max_attempts: int) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=2,
            read_timeout=30,
        ),
    )


def test_requests_fail_during_a_cut_and_recover_after(
    localstack: LocalStack, queue_name: str
) -> None:
    with faultproxy.FaultProxy("127.0.0.1", localstack.port) as proxy:
        no_retry = client(proxy.port, max_attempts=1)
        url = no_retry.create_queue(QueueName=queue_name)["QueueUrl"]

        proxy.cut(1.0)
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            no_retry.send_message(QueueUrl=url, MessageBody="during the cut")
        time.sleep(1.2)
        no_retry.send_message(QueueUrl=url, MessageBody="after the cut")

        stats = proxy.stats()
        assert stats.connections_refused >= 1
        assert stats.bytes_forwarded > 0


def test_long_poll_in_flight_is_retried_across_a_cut(
    localstack: LocalStack, queue_name: str
) -> None:
    with faultproxy.FaultProxy("127.0.0.1", localstack.port) as proxy:
        sqs = client(proxy.port, max_attempts=10)
        url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        outcome: dict[str, Any] = {}

        def long_poll() -> None:
            try:
                outcome["response"] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
            except Exception as error:  # reported by the assertion below
                outcome["error"] = error

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.5)  # the long poll is now waiting inside LocalStack
        proxy.cut(0.5)
        poller.join(30)
        assert "error" not in outcome, outcome
        assert proxy.stats().connections_cut >= 1
        sqs.send_message(QueueUrl=url, MessageBody="still works")
