"""Run the orders worker once against a declared queue and report what happened.

::

    ORDERS_URL='sqs://orders' python check_worker.py

sends one good order and one unreadable one to ``ORDERS_URL``, serves ``orders:app``
until both are settled (the good one processed, the unreadable one dead-lettered at
once through ``DoNotRetry``, so no retry backoff is waited for), stops the worker and
reads the dead letter back from ``cloudqueue.dead_letter_url(ORDERS_URL)``.

The queue and its dead-letter destination must exist first: cloud providers never
create them on use. Declare them once, e.g.
``cloudqueue.declare(ORDERS_URL, dead_letter_after=5)`` (see README.md).
The providers' test suites use :func:`check` to prove the example runs on their servers.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cloudqueue
from cloudqueue.worker import App

HERE = Path(__file__).resolve().parent
GOOD_ORDER = json.dumps({"id": 1, "sku": "apple", "quantity": 2})
POISON_ORDER = b"not an order"


@dataclass(frozen=True)
class CheckResult:
    """What one run of :func:`check` saw."""

    apples_before: int
    apples_after: int
    counters: dict[str, int]
    dead_letters: list[bytes]

    def problems(self) -> list[str]:
        """What differs from a working deployment; empty when the worker behaved."""
        found = []
        if self.apples_after != self.apples_before - 2:
            found.append(f"apples went from {self.apples_before} to {self.apples_after}, not down by 2")
        for name in ("processed", "dead_lettered"):
            if self.counters[name] != 1:
                found.append(f"{name} counter is {self.counters[name]}, not 1")
        if self.dead_letters != [POISON_ORDER]:
            found.append(f"dead letters read back: {self.dead_letters!r}, not [{POISON_ORDER!r}]")
        return found


def load_orders(url: str) -> ModuleType:
    """A fresh ``orders`` module (stock and app) whose handler consumes ``url``."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    previous = os.environ.get("ORDERS_URL")
    os.environ["ORDERS_URL"] = url
    sys.modules.pop("orders", None)  # ORDERS_URL and STOCK are read at import
    try:
        return importlib.import_module("orders")
    finally:
        if previous is None:
            os.environ.pop("ORDERS_URL", None)
        else:
            os.environ["ORDERS_URL"] = previous


async def serve_until_settled(app: App, settled: int, timeout: float) -> None:
    """Serve ``app`` until ``settled`` messages were processed or dead-lettered, then stop it.

    Raises TimeoutError (after a graceful stop) when that takes longer than ``timeout``."""
    serving = asyncio.create_task(app.serve(grace=timeout))
    deadline = time.monotonic() + timeout
    try:
        while sum(app.counters()[name] for name in ("processed", "dead_lettered")) < settled:
            if serving.done() or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    finally:
        app.stop()
        await serving  # re-raises a source's fatal error, e.g. an undeclared queue
    done = sum(app.counters()[name] for name in ("processed", "dead_lettered"))
    if done < settled:
        raise TimeoutError(f"{done} of {settled} messages settled within {timeout} s: {app.counters()}")


def read_dead_letters(url: str, expected: int, timeout: float) -> list[bytes]:
    """Receive (and ack) up to ``expected`` dead letters of ``url`` within ``timeout`` seconds."""
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout
    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url)) as consumer:
        while len(bodies) < expected and time.monotonic() < deadline:
            for message in consumer.receive(expected - len(bodies), wait=min(1.0, timeout)):
                bodies.append(message.body)
                message.ack()
    return bodies


def check(url: str, *, timeout: float = 30.0) -> CheckResult:
    """Send a good and a poison order to ``url`` (a Pub/Sub subscription URL publishes to
    its topic), run the worker on it until both are settled, and read the poison order
    back from the dead-letter destination."""
    orders = load_orders(url)
    before = orders.STOCK["apple"]
    with cloudqueue.open_producer(url) as producer:
        producer.send(GOOD_ORDER)
        producer.send(POISON_ORDER)
    asyncio.run(serve_until_settled(orders.app, 2, timeout))
    return CheckResult(
        apples_before=before,
        apples_after=orders.STOCK["apple"],
        counters=orders.app.counters(),
        dead_letters=read_dead_letters(url, 1, timeout),
    )


if __name__ == "__main__":
    orders_url = os.environ.get("ORDERS_URL", "sqlite:///orders.db?queue=orders")
    result = check(orders_url)
    print(result)
    for problem in result.problems():
        print("PROBLEM:", problem)
    sys.exit(1 if result.problems() else 0)
