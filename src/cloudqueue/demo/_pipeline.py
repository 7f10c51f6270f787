"""Running the pipeline: one queue, handlers chosen by event type, dead letters peeked.

The dead letters are read without settling them (:func:`cloudqueue.ops.dead_letters`), so
they stay in the dead-letter queue after the run for the operations tools to show:
``cloudqueue dlq``, ``cloudqueue redrive`` and the console, ``cloudqueue ui``.
"""

from __future__ import annotations

import contextlib
import time
from typing import TextIO

from .. import (
    Message,
    NotFound,
    ReceivedMessage,
    dead_letter_url,
    declare,
    open_consumer,
    open_producer,
    ops,
    purge,
)
from .._registry import resolve
from .._sync import Producer
from ._report import Report
from ._shop import EVENTS, Shop

__all__ = ["DEAD_LETTER_AFTER", "DEMO_QUEUE", "run_demo"]

DEMO_QUEUE = "demo-orders"
#: Deliveries before the queue gives up on a message and dead-letters it.
DEAD_LETTER_AFTER = 3
#: First retry delay; doubled on each further attempt.
BACKOFF = 0.05
LEASE = 10.0
#: Receive waits are short so the dead-letter queue is read while orders flow.
POLL = 0.05
#: Seconds between two looks at the dead-letter queue.
DEAD_LETTER_LOOK = 0.25

_STAGE_FOR_EVENT = {trigger: stage for stage, (trigger, _) in EVENTS.items()}


def run_demo(
    url: str, *, orders: int = 24, seed: int = 42, timeout: float = 60.0, log: TextIO | None = None
) -> Report:
    """Run the pipeline on the queue at ``url`` (purged first) until every order
    is shipped or dead-lettered, or ``timeout`` seconds pass."""
    started = time.monotonic()
    shop = Shop.generate(orders, seed)
    declare(url, dead_letter_after=DEAD_LETTER_AFTER, lease=LEASE)
    dead_url = dead_letter_url(url)
    for leftover in (url, dead_url):  # start clean: a durable backend keeps earlier runs
        with contextlib.suppress(NotFound):
            purge(leftover)
    with open_producer(url) as producer, open_consumer(url) as consumer:
        shown_dead_url = str(resolve(dead_url)[1])  # secrets hidden
        report = Report(str(producer.url), shown_dead_url, [order_id for order_id, _ in shop.orders])
        pipeline = _Pipeline(shop, producer, report, log)
        producer.send_batch(
            [Message(body, attributes={"event": "order.placed", "order_id": order_id})
             for order_id, body in shop.orders]
        )
        pipeline.say(f"placed {orders} orders on {report.url}")
        deadline = started + timeout
        next_look = 0.0
        while not report.finished():
            now = time.monotonic()
            if now > deadline:
                report.timed_out = True
                break
            for message in consumer.receive(max_messages=50, wait=POLL):
                pipeline.handle(message)
            if now >= next_look:
                for letter in ops.dead_letters(url, max_messages=1000):
                    pipeline.read_dead_letter(letter)
                next_look = now + DEAD_LETTER_LOOK
    report.elapsed = time.monotonic() - started
    return report


class _Pipeline:
    def __init__(self, shop: Shop, producer: Producer, report: Report, log: TextIO | None) -> None:
        self.shop = shop
        self.producer = producer
        self.report = report
        self.log = log
        self.seen_dead_letters: set[str] = set()

    def say(self, line: str) -> None:
        if self.log is not None:
            print(line, file=self.log, flush=True)

    def handle(self, message: ReceivedMessage) -> None:
        event = message.attributes.get("event", "")
        order_id = message.attributes.get("order_id", "?")
        if event == "order.shipped":
            self.report.shipped.add(order_id)
            message.ack()
            return
        stage = _STAGE_FOR_EVENT.get(event)
        if stage is None:
            message.dead_letter(reason=f"no handler for event {event!r}")
            return
        attempt = message.delivery_attempt or 1
        try:
            body = self.shop.handle(stage, order_id, message.body)
        except Exception as error:  # a handler failing is what this demo is about
            delay = BACKOFF * 2 ** (attempt - 1)
            if attempt < DEAD_LETTER_AFTER:
                self.report.stages[stage].retried += 1
                outcome = f"retry in {delay:.2f}s"
            else:
                outcome = "giving up: the queue dead-letters it"
            self.say(
                f"  {stage:<15} {order_id}  attempt {attempt}/{DEAD_LETTER_AFTER} failed: "
                f"{type(error).__name__}: {error}; {outcome}"
            )
            message.nack(delay=delay)
            return
        # Emit the next event before acking: a crash in between means a redelivery,
        # never a lost order (the handlers are idempotent per order id).
        self.producer.send(body, attributes={"event": EVENTS[stage][1], "order_id": order_id})
        self.report.stages[stage].processed.add(order_id)
        message.ack()

    def read_dead_letter(self, letter: ops.PeekedMessage) -> None:
        """Count a dead letter, once: it stays in the dead-letter queue, seen again on
        every look."""
        if letter.id in self.seen_dead_letters:
            return
        self.seen_dead_letters.add(letter.id)
        event = letter.attributes.get("event", "")
        order_id = letter.attributes.get("order_id", "?")
        stage = _STAGE_FOR_EVENT.get(event)
        if stage is not None:
            self.report.stages[stage].dead_lettered.add(order_id)
        preview = letter.body[:40]
        self.say(f"  dead letter     {order_id}  from {stage}: {preview!r}")
