"""The order-processing handlers: one module, run unchanged as a worker
(``cloudqueue run orders:app``), on AWS Lambda, Azure Functions and Cloud Run.

The queue is chosen by URL: ``ORDERS_URL`` (default an SQLite file here), e.g.
``memory://orders``, ``sqs://orders``, ``azuresb://NAMESPACE/orders``,
``pubsub://PROJECT/orders?subscription=worker``. Cloud queues must be declared once
first, e.g. ``cloudqueue.declare(ORDERS_URL, dead_letter_after=5, lease=30)`` (README.md).

Optional fan-out: with ``EVENTS_URL`` set to a topic (``sns://order-events``,
``azuresb://NAMESPACE/order-events``, ``pubsub://PROJECT/order-events``,
``memory://order-events``), each reserved order is published there as an event, and the
app also runs two consumers of that topic, the subscriptions ``billing`` and ``shipping``,
each of which receives every event. Declare both subscriptions before the first order: a
subscription gets only what is published after it exists (README.md).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import threading
from dataclasses import dataclass

import cloudqueue
from cloudqueue.worker import App, DoNotRetry

ORDERS_URL = os.environ.get("ORDERS_URL", "sqlite:///orders.db?queue=orders")
#: A topic for order events (no ``subscription`` parameter); unset: no events, no consumers.
EVENTS_URL = os.environ.get("EVENTS_URL")
log = logging.getLogger("orders")


@dataclass(frozen=True)
class Order:
    """An order to reserve stock for: a JSON object such as
    ``{"id": 1, "sku": "apple", "quantity": 2}``."""

    id: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class OrderReserved:
    """Published to ``EVENTS_URL`` once an order's stock is reserved."""

    id: int
    sku: str
    quantity: int
    type: str = "order.reserved"


class OutOfStock(Exception):
    """Transient: stock arrives later, so the order is retried with backoff."""


STOCK = {"apple": 100, "pear": 0}
# Handlers run on several threads at once (concurrency=4 below, and the serverless
# adapters too): checking the stock and taking from it must happen under one lock,
# or two orders can both see the last apple and both take it.
STOCK_LOCK = threading.Lock()


def process_order(order: Order, message: cloudqueue.ReceivedMessage) -> None:
    """Reserve stock for one order. Raise to retry; DoNotRetry for bad input.

    The worker decodes the body into an ``Order`` first: a body that is not one (not
    JSON, a field missing or of the wrong type) is dead-lettered at once, unretried."""
    sku, quantity = order.sku, order.quantity
    if sku not in STOCK:
        raise DoNotRetry(f"unknown sku {sku!r}")
    with STOCK_LOCK:
        left = STOCK[sku]
        if left < quantity:
            raise OutOfStock(f"{sku}: {left} left, {quantity} wanted (attempt {message.delivery_attempt})")
        STOCK[sku] = left - quantity
    if EVENTS_URL:
        try:
            publish_event(dataclasses.asdict(OrderReserved(id=order.id, sku=sku, quantity=quantity)))
        except Exception:
            # The order will be retried: give the stock back, or the retry takes it twice.
            with STOCK_LOCK:
                STOCK[sku] += quantity
            raise
    log.info("order %s reserved %d x %s (delivery %s)", order.id, quantity, sku,
             message.delivery_attempt)


# One producer for the process, opened on the first event: producers are thread-safe
# (concurrent sends share requests), and opening one per order would cost a client each.
_events_producer: cloudqueue.Producer | None = None
_EVENTS_LOCK = threading.Lock()


def publish_event(event: dict[str, object]) -> str:
    """Publish one order event to ``EVENTS_URL``; its ``type`` also goes as the attribute
    ``kind``, so subscriptions can filter on it without reading bodies."""
    global _events_producer
    with _EVENTS_LOCK:
        if _events_producer is None:
            if not EVENTS_URL:
                raise RuntimeError("publish_event needs EVENTS_URL, the topic to publish to")
            _events_producer = cloudqueue.open_producer(EVENTS_URL)
            atexit.register(_events_producer.close)  # waits for sends under way
        producer = _events_producer
    # Plain JSON text rather than the dataclass through a codec: the event's only
    # attribute stays `kind`, which is what filter policies and outside consumers read.
    return producer.send(json.dumps(event), attributes={"kind": str(event["type"])})


def subscription_url(topic_url: str, name: str) -> str:
    """``topic_url`` with ``subscription=name`` added to its query."""
    return f"{topic_url}{'&' if '?' in topic_url else '?'}subscription={name}"


# What each event consumer did: events handled per order id. A real consumer would charge
# a card or book a courier, keyed by the order id so that a redelivered event (delivery
# is at least once) finds its order done; the count lets the example's tests see repeats.
BILLED: dict[object, int] = {}
SHIPPED: dict[object, int] = {}
_RECORD_LOCK = threading.Lock()


def record_event(done: dict[object, int], event: OrderReserved) -> None:
    with _RECORD_LOCK:
        done[event.id] = done.get(event.id, 0) + 1


def bill_order(event: OrderReserved) -> None:
    """Bill a reserved order (here: count it, per order id)."""
    record_event(BILLED, event)


def ship_order(event: OrderReserved) -> None:
    """Ship a reserved order (here: count it, per order id)."""
    record_event(SHIPPED, event)


app = App()
app.add_handler(ORDERS_URL, process_order, concurrency=4, max_attempts=5)
if EVENTS_URL:
    # What the app sends, for `cloudqueue asyncapi orders:app` (docs/asyncapi.md).
    app.publishes(EVENTS_URL, OrderReserved, description="One event per order whose stock is reserved.")
    app.add_handler(subscription_url(EVENTS_URL, "billing"), bill_order, max_attempts=5)
    app.add_handler(subscription_url(EVENTS_URL, "shipping"), ship_order, max_attempts=5)
