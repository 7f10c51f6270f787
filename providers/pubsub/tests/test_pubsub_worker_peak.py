"""Peak shaving and effectively-once processing in the worker on Pub/Sub (the local
gRPC server, through google-cloud-pubsub): a rate limit holds and never exceeds its
burst, the circuit breaker stops pulling and closes after a good probe, and the
Idempotency middleware runs a handler once per key, also across a SIGKILL between
handler success and ack. Pub/Sub's shortest ack deadline is 10 s, so the two tests
that wait for a lease to run out take that long."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.worker import serve_until
from cloudqueue.worker import (
    App,
    CircuitBreaker,
    FailurePolicy,
    Idempotency,
    SQLiteStore,
    by_attribute,
    by_message_id,
)

from cloudqueue_pubsub.testing import PubSubServer

# The core's worker tests hold the helpers shared with this one (the SIGKILLed worker).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from test_worker_idempotency import (  # type: ignore[import-not-found]
    HoldFirstAck,
    run_killed_worker,
)
from test_worker_rate import most_in_any_stretch  # type: ignore[import-not-found]

LEASE = 10.0  # Pub/Sub's shortest ack deadline


def declare(server: PubSubServer, kind: str) -> str:
    topic = unique_name(kind)
    url = f"pubsub://peak/{topic}?subscription={topic}-worker"
    cloudqueue.declare(url, dead_letter_after=5, lease=LEASE)
    return url




def waiting(url: str) -> list[str]:
    got: list[str] = []
    with cloudqueue.open_consumer(url) as consumer:
        while batch := consumer.receive(100, 1.0):
            for message in batch:
                message.ack()
            got.extend(message.text() for message in batch)
    return got


def test_a_rate_holds_within_ten_percent_over_ten_seconds_and_never_exceeds_the_burst(
    server: PubSubServer,
) -> None:
    per_second, burst, lanes, peak = 50, 5, 4, 620
    url = declare(server, "rate")
    with cloudqueue.open_producer(url) as producer:
        for start in range(0, peak, 100):
            producer.send_batch([cloudqueue.Message(str(i)) for i in range(start, min(peak, start + 100))])
    app = App(concurrency=lanes)
    starts: list[float] = []

    @app.handler(url, rate=f"{per_second}/s", burst=burst)
    async def handle(message: cloudqueue.AsyncReceivedMessage) -> None:
        starts.append(time.monotonic())

    serve_until(app, lambda: app.counters()["processed"] >= 560)
    first = min(starts)
    in_ten_seconds = sum(1 for at in starts if at < first + 10.0)
    assert 0.9 * per_second * 10 <= in_ten_seconds <= 1.1 * per_second * 10, in_ten_seconds
    assert most_in_any_stretch(starts, per_second) <= burst + lanes
    assert len(waiting(url)) == peak - len(starts)  # the rest of the peak stayed in the subscription


def test_the_breaker_opens_stops_pulling_and_closes_after_a_good_probe(
    server: PubSubServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloudqueue.worker")
    url = declare(server, "breaker")
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(str(i)) for i in range(10)])
    app = App(policy=FailurePolicy(max_attempts=3, initial_delay=1.0, max_delay=1.0, jitter=0.0))
    calls: list[float] = []

    @app.handler(url, concurrency=1, breaker=CircuitBreaker(min_calls=3, cool_down=0.5))
    def handle(message: cloudqueue.ReceivedMessage) -> None:
        calls.append(time.monotonic())
        if len(calls) <= 4:  # three to open it, then the first probe
            raise ConnectionError("downstream is down")

    serve_until(app, lambda: app.counters()["processed"] == 10)
    counters = app.counters()
    assert (counters["failed"], counters["dead_lettered"]) == (4, 0)
    changes = [r.getMessage().split(" is ")[1].split(":")[0] for r in caplog.records
               if r.getMessage().startswith("circuit for ")]
    assert changes == ["open", "half-open", "open", "half-open", "closed"]
    assert calls[3] - calls[2] >= 0.5 and calls[4] - calls[3] >= 0.5


def test_a_duplicate_send_with_the_same_key_runs_once(server: PubSubServer, tmp_path: Path) -> None:
    url = declare(server, "dupes")
    with cloudqueue.open_producer(url) as producer:
        for body, order in [("first", "o-1"), ("second", "o-2"), ("first again", "o-1")]:
            producer.send(body, attributes={"order-id": order})
    store = SQLiteStore(tmp_path / "keys.db")
    app = App(concurrency=1, middleware=[Idempotency(store, key=by_attribute("order-id"))])
    ran: list[str] = []
    app.add_handler(url, lambda message: ran.append(message.text()))
    serve_until(app, lambda: app.counters()["processed"] + app.counters()["skipped"] == 3)
    assert sorted(ran) == ["first", "second"]
    assert app.routes[0].counters.events()["duplicates"] == 1


def test_redelivery_after_the_ack_deadline_past_a_successful_handler_is_skipped(
    server: PubSubServer, tmp_path: Path
) -> None:
    url = declare(server, "lease")
    with cloudqueue.open_producer(url) as producer:
        producer.send("order 1")
    app = App(concurrency=2, max_lease_extension=0)  # no deadline extensions: it runs out
    hold = HoldFirstAck(release=lambda: app.counters()["skipped"] == 1)
    app.middleware = [Idempotency(SQLiteStore(tmp_path / "keys.db"), key=by_message_id), hold]
    runs: list[int | None] = []
    app.add_handler(url, lambda message: runs.append(message.delivery_attempt))
    serve_until(app, lambda: app.counters()["skipped"] == 1 and app.counters()["processed"] == 1)
    assert runs == [1]  # Pub/Sub redelivered it (attempt 2), acked without running
    assert waiting(url) == []


def test_sigkill_between_handler_success_and_ack_does_not_run_it_again(
    server: PubSubServer, tmp_path: Path
) -> None:
    url = declare(server, "sigkill")
    with cloudqueue.open_producer(url) as producer:
        producer.send("order 7", attributes={"order-id": "o-7"})
    side_effects = run_killed_worker(url, tmp_path, env=dict(os.environ))  # PUBSUB_EMULATOR_HOST set
    assert side_effects.read_text() == "order 7\n"

    app = App(middleware=[Idempotency(SQLiteStore(tmp_path / "processed.db"), key=by_attribute("order-id"))])
    ran: list[str] = []
    app.add_handler(url, lambda message: ran.append(message.text()))
    serve_until(app, lambda: app.counters()["skipped"] == 1)  # after the 10 s ack deadline
    assert ran == [] and side_effects.read_text() == "order 7\n"
    assert waiting(url) == []
