"""The orders example (examples/orders) runs as a worker on Pub/Sub: the local gRPC
server, through google-cloud-pubsub."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudqueue
from cloudqueue.testing.contract import unique_name

from cloudqueue_pubsub.testing import PubSubServer

ORDERS_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "orders"
sys.path.insert(0, str(ORDERS_EXAMPLE))
import check_worker  # type: ignore[import-not-found]  # noqa: E402  (the example folder is no package)


def test_orders_example_as_a_worker(server: PubSubServer) -> None:
    topic = unique_name("orders")
    url = f"pubsub://worker-example/{topic}?subscription={topic}-worker"
    # Pub/Sub's dead-letter policy takes 5..100 attempts and its ack deadline is at
    # least 10 s; the poison order is dead-lettered by the worker (DoNotRetry), so
    # neither is waited for. The declaration also makes the dead-letter topic and
    # the subscription that dead_letter_url(url) reads.
    cloudqueue.declare(url, dead_letter_after=5, lease=10.0)
    result = check_worker.check(url, timeout=20.0)
    assert result.problems() == []
