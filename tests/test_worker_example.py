"""The orders example runs as a worker and through each serverless adapter, unchanged."""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import cloudqueue
from cloudqueue.serverless import aws_lambda, azure_functions, pubsub_push_wsgi

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orders"


@pytest.fixture
def orders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ModuleType]:
    kind = getattr(request, "param", "memory")
    url = f"memory://o{time.monotonic_ns()}"
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/orders.db?queue=orders"
    monkeypatch.setenv("ORDERS_URL", url)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("orders", None)
    module = importlib.import_module("orders")
    yield module
    sys.modules.pop("orders", None)


@pytest.mark.parametrize("orders", ["memory", "sqlite"], indirect=True)
def test_example_as_a_worker(orders: ModuleType) -> None:
    url = orders.ORDERS_URL
    with cloudqueue.open_producer(url) as producer:
        producer.send(json.dumps({"id": 1, "sku": "apple", "quantity": 2}))
        producer.send(b"garbage")
    app = orders.app

    async def main() -> None:
        serving = asyncio.create_task(app.serve())
        deadline = time.monotonic() + 10
        while app.counters()["processed"] + app.counters()["dead_lettered"] < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        app.stop()
        await serving

    asyncio.run(main())
    assert orders.STOCK["apple"] == 98
    assert app.counters()["dead_lettered"] == 1


def test_example_through_each_adapter(orders: ModuleType) -> None:
    order = json.dumps({"id": 2, "sku": "pear", "quantity": 1})  # out of stock: fails
    record = {"messageId": "r1", "receiptHandle": "h", "body": order,
              "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
              "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:orders"}
    ok = {**record, "messageId": "r2", "body": json.dumps({"id": 3, "sku": "apple", "quantity": 1})}
    assert aws_lambda(orders.process_order)({"Records": [record, ok]}, None) == {
        "batchItemFailures": [{"itemIdentifier": "r1"}]}

    class FakeSb:  # the attributes azure_functions reads; the converter is tested elsewhere
        message_id, delivery_count, application_properties = "sb", 1, {}

        def get_body(self) -> bytes:
            return order.encode()

    with pytest.raises(Exception, match="sb"):
        azure_functions(orders.process_order)(FakeSb())

    app = pubsub_push_wsgi(orders.process_order)
    body = json.dumps({"message": {"messageId": "p1", "data": base64.b64encode(order.encode()).decode()},
                       "subscription": "projects/p/subscriptions/s"}).encode()
    statuses: list[str] = []
    app({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
         "wsgi.input": io.BytesIO(body)}, lambda status, headers: statuses.append(status))
    assert statuses == ["500 Internal Server Error"]


class _SlowStock(dict[str, int]):
    """Stock whose reads let other threads run, as a database read would: handlers that
    check and take stock without one lock then lose updates or oversell."""

    def __getitem__(self, sku: str) -> int:
        left = super().__getitem__(sku)
        time.sleep(0.002)
        return left


def test_example_handlers_on_the_worker_threads_never_lose_stock(
    orders: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders, "STOCK", _SlowStock(apple=20, pear=0))
    with cloudqueue.open_producer(orders.ORDERS_URL) as producer:
        producer.send_batch([
            cloudqueue.Message(json.dumps({"id": i, "sku": "apple", "quantity": 1})) for i in range(20)
        ])
    app = orders.app

    async def main() -> None:
        serving = asyncio.create_task(app.serve())
        deadline = time.monotonic() + 10
        while app.counters()["processed"] < 20:
            assert time.monotonic() < deadline, app.counters()
            await asyncio.sleep(0.01)
        app.stop()
        await serving

    asyncio.run(main())
    assert orders.STOCK["apple"] == 0
    assert (app.counters()["processed"], app.counters()["failed"]) == (20, 0)
