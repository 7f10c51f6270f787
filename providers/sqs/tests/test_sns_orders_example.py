"""The orders example (examples/orders) publishes its events to an SNS topic consumed by two
subscriptions, billing and shipping: LocalStack, through boto3."""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import boto3
import cloudqueue
import pytest
from cloudqueue.serverless import aws_lambda
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.worker import serve_until
from conftest_driver import aws_environment, endpoint_url

ORDERS_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "orders"
ORDERS = 5
SUBSCRIPTIONS = ("billing", "shipping")

__all__ = ["aws_environment", "endpoint_url"]


@pytest.fixture
def orders(endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's module, its orders on an SQS queue and its events on a fresh SNS topic
    with both subscriptions declared (30 s leases: nothing is redelivered during a test)."""
    query = urlencode({"region": "us-east-1", "endpoint_url": endpoint_url})
    orders_url = f"sqs://{unique_name('orders')}?{query}"
    events_url = f"sns://{unique_name('order-events')}?{query}"
    cloudqueue.declare(orders_url, dead_letter_after=5, lease=30)
    monkeypatch.setenv("ORDERS_URL", orders_url)
    monkeypatch.setenv("EVENTS_URL", events_url)
    monkeypatch.syspath_prepend(str(ORDERS_EXAMPLE))
    sys.modules.pop("orders", None)  # ORDERS_URL, EVENTS_URL and the app are read at import
    module = importlib.import_module("orders")
    try:
        for name in SUBSCRIPTIONS:
            cloudqueue.declare(module.subscription_url(events_url, name), dead_letter_after=5, lease=30)
        yield module
    finally:
        sys.modules.pop("orders", None)
        if module._events_producer is not None:
            module._events_producer.close()
        # Deleting the topic deletes its subscriptions and their queues; twins are named.
        dead = [cloudqueue.dead_letter_url(module.subscription_url(events_url, s)) for s in SUBSCRIPTIONS]
        for url in (events_url, *dead, orders_url, cloudqueue.dead_letter_url(orders_url)):
            with contextlib.suppress(cloudqueue.QueueError):
                cloudqueue.delete(url)


def test_every_reserved_order_reaches_billing_and_shipping_once(orders: ModuleType) -> None:
    ids = list(range(1, ORDERS + 1))
    with cloudqueue.open_producer(orders.ORDERS_URL) as producer:
        producer.send_batch(
            [cloudqueue.Message(json.dumps({"id": i, "sku": "apple", "quantity": 1})) for i in ids]
        )
    apples = orders.STOCK["apple"]

    # Each order is processed once, and its event once by each subscription's handler.
    serve_until(orders.app, lambda: orders.app.counters()["processed"] >= ORDERS * 3, timeout=60)

    assert orders.STOCK["apple"] == apples - ORDERS
    billed, shipped = orders.BILLED, orders.SHIPPED  # events handled per order id
    assert billed == {i: 1 for i in ids}
    assert shipped == {i: 1 for i in ids}
    assert orders.app.counters()["processed"] == ORDERS * 3
    for name in SUBSCRIPTIONS:  # nothing left over or delivered twice behind the handlers' backs
        with cloudqueue.open_consumer(orders.subscription_url(orders.EVENTS_URL, name)) as consumer:
            assert consumer.receive(max_messages=10, wait=1.0) == []


def test_events_carry_the_order_and_its_kind(orders: ModuleType) -> None:
    """What a consumer outside the example (or a filter policy on ``kind``) sees."""
    event_id = orders.publish_event({"type": "order.reserved", "id": 7, "sku": "apple", "quantity": 2})
    for name in SUBSCRIPTIONS:
        with cloudqueue.open_consumer(orders.subscription_url(orders.EVENTS_URL, name)) as consumer:
            received: list[cloudqueue.ReceivedMessage] = []
            deadline = time.monotonic() + 30  # only ends a hang; SNS delivers within ms here
            while not received and time.monotonic() < deadline:
                received = consumer.receive(max_messages=10, wait=1.0)
            (message,) = received
            message.ack()
        assert json.loads(message.body) == {"type": "order.reserved", "id": 7, "sku": "apple", "quantity": 2}
        assert message.attributes == {"kind": "order.reserved"}
        assert message.id == event_id  # the id send returned, across SNS's raw delivery


def _lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS event record as Lambda builds it from a received message (lower-case keys)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes") or {},
        "messageAttributes": {
            name: {"dataType": value["DataType"], "stringValue": value.get("StringValue"),
                   "stringListValues": [], "binaryListValues": []}
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def test_billing_under_lambda_reads_the_subscription_queue(orders: ModuleType, endpoint_url: str) -> None:
    """lambda/template.yaml's billing function: an SQS trigger on the billing queue runs
    bill_order on the raw-delivered event (a record as Lambda shapes it from the queue)."""
    orders.publish_event({"type": "order.reserved", "id": 9, "sku": "apple", "quantity": 1})
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    topic = orders.EVENTS_URL.split("://", 1)[1].split("?", 1)[0]
    queue_url = sqs.get_queue_url(QueueName=f"{topic}-billing")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30  # only ends a hang
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
    assert len(messages) == 1

    answer = aws_lambda(orders.bill_order)({"Records": [_lambda_record(messages[0], queue_arn)]}, None)

    assert answer == {"batchItemFailures": []}
    billed = orders.BILLED
    assert billed == {9: 1}
