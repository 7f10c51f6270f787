"""The circuit breaker on memory and SQLite: it opens after the failure threshold and
stops receiving (nothing dead-lettered, messages stay in the queue), probes with one
message after the cool-down, and closes when the probe succeeds."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue.errors import InvalidArgument
from cloudqueue.testing.worker import serve_until
from cloudqueue.worker import App, CircuitBreaker, DoNotRetry, FailurePolicy
from cloudqueue.worker._breaker import Breaker, BreakerState
from cloudqueue.worker._counters import Counters

_names = itertools.count()
COOL_DOWN = 0.5


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = f"brk{next(_names)}-{time.monotonic_ns()}"
    made = f"memory://{name}" if request.param == "memory" else f"sqlite:///{tmp_path}/brk.db?queue={name}"
    cloudqueue.declare(made, lease=30)
    return made




def circuit_changes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage().split(" is ")[1].split(":")[0]
        for record in caplog.records
        if record.name == "cloudqueue.worker" and record.getMessage().startswith("circuit for ")
    ]


@pytest.mark.parametrize("kind", ["thread", "coroutine"])
def test_opens_after_the_threshold_stops_pulling_and_closes_after_a_good_probe(
    url: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloudqueue.worker")
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(str(i)) for i in range(10)])
    # Without the breaker, max_attempts=3 would dead-letter the first messages within
    # a second; backoff of 1 s keeps the first failures on three different messages.
    app = App(policy=FailurePolicy(max_attempts=3, initial_delay=1.0, max_delay=1.0, jitter=0.0))
    breaker = CircuitBreaker(failure_ratio=0.5, window=60.0, min_calls=3, cool_down=COOL_DOWN)
    calls: list[tuple[float, str]] = []
    down_for = 4  # the downstream system fails the first four calls: three, then the first probe

    def work(message: cloudqueue.ReceivedMessage | cloudqueue.AsyncReceivedMessage) -> None:
        calls.append((time.monotonic(), message.text()))
        if len(calls) <= down_for:
            raise ConnectionError("downstream is down")

    if kind == "thread":
        app.add_handler(url, work, concurrency=1, breaker=breaker)
    else:
        async def work_async(message: cloudqueue.AsyncReceivedMessage) -> None:
            work(message)

        app.add_handler(url, work_async, concurrency=1, breaker=breaker)

    serve_until(app, lambda: app.counters()["processed"] == 10)
    counters = app.counters()
    assert (counters["failed"], counters["retried"], counters["dead_lettered"]) == (4, 4, 0)
    assert circuit_changes(caplog) == ["open", "half-open", "open", "half-open", "closed"]
    events = app.routes[0].counters.events()
    assert (events["circuit_open"], events["circuit_half_open"], events["circuit_closed"]) == (2, 2, 1)
    # Nothing was received while open: each probe came a whole cool-down after the
    # failure that opened the circuit.
    times = [at for at, _ in calls]
    assert times[3] - times[2] >= COOL_DOWN and times[4] - times[3] >= COOL_DOWN
    assert sorted({text for _, text in calls}, key=int) == [str(i) for i in range(10)]


def test_while_open_the_queue_keeps_the_messages_and_nothing_is_dead_lettered(url: str) -> None:
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(str(i)) for i in range(10)])
    # max_attempts=1: every failure would dead-letter its message at once, but the
    # circuit opens on the third failure, which is then blamed on the downstream
    # system: nacked for after the cool-down, not dead-lettered.
    app = App(policy=FailurePolicy(max_attempts=1))
    seen: list[str] = []

    @app.handler(url, concurrency=1, breaker=CircuitBreaker(failure_ratio=1.0, min_calls=3, cool_down=60.0))
    def always_fails(message: cloudqueue.ReceivedMessage) -> None:
        seen.append(message.text())
        raise ConnectionError("downstream is down")

    serve_until(app, lambda: app.routes[0].counters.events()["circuit_open"] == 1)
    counters = app.counters()
    # The first two failed while closed (dead-lettered: one attempt allowed), the third
    # opened the circuit and was kept; nothing else was received.
    assert (counters["failed"], counters["dead_lettered"], counters["retried"]) == (3, 2, 1)
    assert len(seen) == 3
    with cloudqueue.open_consumer(url) as consumer:
        left = consumer.receive(10, 0.5)
        for message in left:
            message.ack()
    assert len(left) == 7  # the rest never left the queue (the kept one is delayed)


def test_message_specific_failures_do_not_count(url: str) -> None:
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(str(i)) for i in range(6)])
    app = App()

    @app.handler(url, concurrency=1, dead_letter_on=(KeyError,),
                 breaker=CircuitBreaker(failure_ratio=0.5, min_calls=2, cool_down=60.0))
    def poison(message: cloudqueue.ReceivedMessage) -> None:
        if int(message.text()) % 2:
            raise DoNotRetry("unreadable")
        raise KeyError("no sku")

    serve_until(app, lambda: app.counters()["dead_lettered"] == 6)
    assert app.routes[0].counters.events()["circuit_open"] == 0


def test_old_failures_leave_the_window_and_the_volume_must_be_reached() -> None:
    now = [0.0]
    counters = Counters()
    breaker = Breaker(
        CircuitBreaker(failure_ratio=0.5, window=10.0, min_calls=4, cool_down=5.0), "memory://x", counters,
        clock=lambda: now[0],
    )
    for _ in range(3):
        breaker.record(failed=True)  # 3 of 3 failed, below the minimum volume
    assert breaker.state is BreakerState.CLOSED
    now[0] = 11.0
    breaker.record(failed=True)  # the first three are out of the window: 1 call
    breaker.record(failed=False)
    breaker.record(failed=False)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(failed=True)  # 2 of 4 within the window
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit() == (pytest.approx(5.0), False)
    now[0] = 16.0
    assert breaker.admit() == (0.0, True)  # the probe
    assert breaker.admit() == (5.0, False)  # only one
    breaker.unused()  # the probe's receive brought nothing: another lane may probe
    assert breaker.admit() == (0.0, True)
    breaker.record(failed=False)
    assert breaker.state is BreakerState.CLOSED and breaker.admit() == (0.0, False)
    assert counters.events()["circuit_open"] == 1 and counters.events()["circuit_closed"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"failure_ratio": 0}, "failure_ratio must be in"), ({"failure_ratio": 1.5}, "failure_ratio must be in"),
     ({"window": 0}, "window must be a number of seconds"), ({"cool_down": -1}, "cool_down must be"),
     ({"min_calls": 0}, "min_calls must be a positive int")],
)
def test_bad_settings_are_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        CircuitBreaker(**fields)  # type: ignore[arg-type]


def test_breaker_must_be_a_circuit_breaker() -> None:
    with pytest.raises(InvalidArgument, match=r"breaker must be a cloudqueue\.worker\.CircuitBreaker"):
        App().add_handler("memory://b", print, breaker={"failure_ratio": 0.5})  # type: ignore[arg-type]
