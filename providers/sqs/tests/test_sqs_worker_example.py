"""The orders example (examples/orders) runs as a worker on SQS: LocalStack, through boto3."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import cloudqueue
from cloudqueue.testing.contract import unique_name
from conftest_driver import SqsHarness, aws_environment, endpoint_url

ORDERS_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "orders"
sys.path.insert(0, str(ORDERS_EXAMPLE))
import check_worker  # type: ignore[import-not-found]  # noqa: E402  (the example folder is no package)

__all__ = ["aws_environment", "endpoint_url"]


def test_orders_example_as_a_worker(endpoint_url: str) -> None:
    url = SqsHarness(endpoint_url).url(unique_name("orders"))
    # SQS's maxReceiveCount accepts 1..1000; the poison order is dead-lettered by the
    # worker itself (DoNotRetry), so the redrive count only has to exist.
    cloudqueue.declare(url, dead_letter_after=5, lease=2.0)
    try:
        result = check_worker.check(url, timeout=20.0)
    finally:
        for name in (url, cloudqueue.dead_letter_url(url)):
            with contextlib.suppress(cloudqueue.QueueError):
                cloudqueue.delete(name)
    assert result.problems() == []
