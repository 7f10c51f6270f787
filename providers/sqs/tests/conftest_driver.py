"""Fixtures and the contract-suite harness for the SQS driver's tests.

Kept apart from conftest.py (the LocalStack runner's fixtures); test modules import
what they use from here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlencode

import cloudqueue
import pytest
from cloudqueue.testing.contract import DeclaringHarness, Destination, unique_name

from cloudqueue_sqs.testing import LocalStack

#: LocalStack accepts any credentials; the driver finds these through boto3's chain.
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIDLOCALSTACKTEST",
    "AWS_SECRET_ACCESS_KEY": "local-secret-never-shown",
}


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[dict[str, str]]:
    """Credentials in the environment, as boto3's default chain reads them."""
    saved = {name: os.environ.get(name) for name in _CREDENTIALS}
    os.environ.update(_CREDENTIALS)
    yield dict(_CREDENTIALS)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class SqsHarness(DeclaringHarness):
    """Fresh LocalStack queues. URLs name the endpoint and region as parameters."""

    # LocalStack's visibility and delay timers run up to about a second late.
    timer_slack = 1.0
    short_lease = 1.0
    supports_delayed_delivery = True
    supports_dead_letter = True
    # GetQueueAttributes' ApproximateNumberOf* counts (the redrive target's for dead
    # letters): approximate, never exact. The oldest age and totals are CloudWatch only.
    stats_fields = frozenset({"available", "in_flight", "delayed", "dead_letters"})
    stats_exact = False
    native_peek = False  # SQS cannot peek: cloudqueue.ops receives and releases

    def __init__(self, endpoint_url: str, *, fifo: bool = False) -> None:
        self.endpoint_url = endpoint_url
        self.fifo = fifo
        self.query = "?" + urlencode({"region": "us-east-1", "endpoint_url": endpoint_url})

    def url(self, name: str, subscription: str | None = None) -> str:
        return f"sqs://{name}{self.query}"  # no subscriptions: SQS claims no fan-out

    def new_name(self) -> str:
        return unique_name("cq") + (".fifo" if self.fifo else "")

    def missing_url(self) -> str:
        return self.url(self.new_name())

    def process_env(self) -> dict[str, str]:
        # The URLs name the endpoint; a process needs the credentials boto3's chain reads.
        return {**os.environ, **_CREDENTIALS}

    def cleanup(self, destination: Destination) -> None:
        for url in (destination.producer_url, cloudqueue.dead_letter_url(destination.producer_url)):
            with contextlib.suppress(cloudqueue.QueueError):
                cloudqueue.delete(url)


class FifoHarness(SqsHarness):
    supports_ordering = True
    supports_deduplication = True
    supports_delayed_delivery = False  # SQS FIFO queues take no per-message delay

    def __init__(self, endpoint_url: str) -> None:
        super().__init__(endpoint_url, fifo=True)


@pytest.fixture(scope="session")
def endpoint_url(localstack: LocalStack, aws_environment: dict[str, str]) -> str:
    return localstack.endpoint_url
