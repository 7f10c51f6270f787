"""The orders example (examples/orders) runs as a worker on RabbitMQ: a real broker
(RabbitMqServer), through aio-pika, on a quorum queue with its dead-letter queue."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudqueue
from cloudqueue.testing.contract import unique_name

ORDERS_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "orders"
sys.path.insert(0, str(ORDERS_EXAMPLE))
import check_worker  # type: ignore[import-not-found]  # noqa: E402  (the example folder is no package)


def test_orders_example_as_a_worker(rabbitmq_url: str) -> None:
    url = f"{rabbitmq_url}?queue={unique_name('orders')}"
    # The declaration also makes the dead-letter exchange and queue that dead_letter_url(url)
    # reads; the poison order is dead-lettered by the worker at once (DoNotRetry), so the
    # delivery limit is never waited for.
    cloudqueue.declare(url, dead_letter_after=5)
    try:
        result = check_worker.check(url, timeout=30.0)
        assert result.problems() == []
    finally:
        cloudqueue.delete(url)
