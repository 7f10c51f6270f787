"""The order-processing handlers: one module, run unchanged as a worker
(``cloudqueue run orders:app``), on AWS Lambda, Azure Functions and Cloud Run.

The queue is chosen by URL: ``ORDERS_URL`` (default an SQLite file here), e.g.
``memory://orders``, ``sqs://orders``, ``azuresb://NAMESPACE/orders``,
``pubsub://PROJECT/orders?subscription=worker``. Cloud queues must be declared once
first, e.g. ``cloudqueue.declare(ORDERS_URL, dead_letter_after=5, lease=30)`` (README.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading

import cloudqueue
from cloudqueue.worker import App, DoNotRetry

ORDERS_URL = os.environ.get("ORDERS_URL", "sqlite:///orders.db?queue=orders")
log = logging.getLogger("orders")


class OutOfStock(Exception):
    """Transient: stock arrives later, so the order is retried with backoff."""


STOCK = {"apple": 100, "pear": 0}
# Handlers run on several threads at once (concurrency=4 below, and the serverless
# adapters too): checking the stock and taking from it must happen under one lock,
# or two orders can both see the last apple and both take it.
STOCK_LOCK = threading.Lock()


def process_order(message: cloudqueue.ReceivedMessage) -> None:
    """Reserve stock for one order event. Raise to retry; DoNotRetry for bad input."""
    try:
        order = json.loads(message.body)
        sku, quantity = order["sku"], int(order["quantity"])
    except (ValueError, KeyError, TypeError) as error:
        raise DoNotRetry(f"unreadable order: {error}") from error
    if sku not in STOCK:
        raise DoNotRetry(f"unknown sku {sku!r}")
    with STOCK_LOCK:
        left = STOCK[sku]
        if left < quantity:
            raise OutOfStock(f"{sku}: {left} left, {quantity} wanted (attempt {message.delivery_attempt})")
        STOCK[sku] = left - quantity
    log.info("order %s reserved %d x %s", order.get("id"), quantity, sku)


app = App()
app.add_handler(ORDERS_URL, process_order, concurrency=4, max_attempts=5)
