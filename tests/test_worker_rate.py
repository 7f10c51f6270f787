"""Rate limits per handler on memory and SQLite: the bucket paces receiving, so the
peak waits in the queue; a rate holds over 10 s and no stretch exceeds the burst."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue.errors import InvalidArgument
from cloudqueue.testing.worker import serve_until
from cloudqueue.worker import App, RateLimit, rate_limit
from cloudqueue.worker._rate import TokenBucket

_names = itertools.count()


def make_queue(provider: str, tmp_path: Path) -> str:
    name = f"rate{next(_names)}-{time.monotonic_ns()}"
    url = f"memory://{name}" if provider == "memory" else f"sqlite:///{tmp_path}/rate.db?queue={name}"
    cloudqueue.declare(url, lease=30)
    return url


def send_many(url: str, count: int) -> None:
    with cloudqueue.open_producer(url) as producer:
        for start in range(0, count, 10):
            producer.send_batch([cloudqueue.Message(str(i)) for i in range(start, min(count, start + 10))])


def count_waiting(url: str) -> int:
    got = 0
    with cloudqueue.open_consumer(url) as consumer:
        while batch := consumer.receive(100, 0.3):
            for message in batch:
                message.ack()
            got += len(batch)
    return got




def most_in_any_stretch(starts: list[float], per_second: float) -> float:
    """The largest ``count - per_second * length`` over every stretch of handler starts
    (from the i-th to the j-th): how far above the rate any stretch went. A token
    bucket keeps it at most the burst (plus one token per lane that had taken it
    before the stretch began)."""
    worst = best_start = float("-inf")
    for j, at in enumerate(sorted(starts)):
        best_start = max(best_start, per_second * at - j)  # the best i so far, i = j included
        worst = max(worst, (j + 1 - per_second * at) + best_start)
    return worst


@pytest.mark.parametrize(("provider", "kind"), [("memory", "coroutine"), ("sqlite", "thread")])
def test_a_rate_holds_within_ten_percent_over_ten_seconds_and_never_exceeds_the_burst(
    provider: str, kind: str, tmp_path: Path
) -> None:
    per_second, burst, lanes = 50, 5, 4
    url = make_queue(provider, tmp_path)
    peak = 620
    send_many(url, peak)  # the spike: all of it in the queue before the worker starts
    app = App(concurrency=lanes)
    starts: list[float] = []

    if kind == "thread":
        @app.handler(url, rate=f"{per_second}/s", burst=burst)
        def handle(message: cloudqueue.ReceivedMessage) -> None:
            starts.append(time.monotonic())
    else:
        @app.handler(url, rate=f"{per_second * 60}/min", burst=burst)
        async def handle_async(message: cloudqueue.AsyncReceivedMessage) -> None:
            starts.append(time.monotonic())
            await asyncio.sleep(0.01)

    serve_until(app, lambda: app.counters()["processed"] >= 560)
    first = min(starts)
    in_ten_seconds = sum(1 for at in starts if at < first + 10.0)
    assert 0.9 * per_second * 10 <= in_ten_seconds <= 1.1 * per_second * 10, in_ten_seconds
    # Never above the burst: the bucket's bound, with one token per lane taken before.
    assert most_in_any_stretch(starts, per_second) <= burst + lanes
    # The peak waited in the queue, not in the worker: what was not handled is still there.
    assert count_waiting(url) == peak - len(starts)


def test_a_waiting_lane_stops_promptly() -> None:
    url = f"memory://slow-{time.monotonic_ns()}"
    send_many(url, 5)
    app = App(concurrency=2)

    @app.handler(url, rate="1/min")  # the second token comes a minute later
    async def handle(message: cloudqueue.AsyncReceivedMessage) -> None:
        pass

    serve_until(app, lambda: app.counters()["processed"] == 1, timeout=20.0)
    assert app.counters()["processed"] == 1
    assert count_waiting(url) == 4


def test_bucket_grants_no_more_than_the_burst_and_refills_at_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(RateLimit(per_second=10.0, burst=3), clock=lambda: now[0])
    assert bucket.take(5) == (3, 0.0)  # starts full, never more than the burst
    taken, wait = bucket.take(1)
    assert taken == 0 and wait == pytest.approx(0.1)
    now[0] += 0.25
    assert bucket.take(5) == (2, 0.0)  # 2.5 tokens accrued: whole ones only
    now[0] += 60.0
    assert bucket.take(10) == (3, 0.0)  # an idle minute still fills it to the burst only
    bucket.give_back(2)
    assert bucket.take(10) == (2, 0.0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("200/s", RateLimit(200.0, 20)), ("90/min", RateLimit(1.5, 1)), (" 5 / second ", RateLimit(5.0, 1)),
     ("0.5/s", RateLimit(0.5, 1)), ("600/m", RateLimit(10.0, 1))],
)
def test_rate_specs(spec: str, expected: RateLimit) -> None:
    assert rate_limit(spec) == expected


@pytest.mark.parametrize("spec", ["200", "200/h", "-1/s", "0/s", "abc/s", "/s", "1e3/s", 200])
def test_a_bad_rate_names_the_format(spec: object) -> None:
    app = App()
    with pytest.raises(InvalidArgument, match=r"'200/s'.*'90/min'|more than 0") as caught:
        app.add_handler(f"memory://bad-{time.monotonic_ns()}", print, rate=spec)  # type: ignore[arg-type]
    assert repr(spec) in str(caught.value)


def test_a_bad_burst_is_refused() -> None:
    app = App()
    with pytest.raises(InvalidArgument, match="burst must be a positive int"):
        app.add_handler("memory://burst-a", print, rate="10/s", burst=0)
    with pytest.raises(InvalidArgument, match="burst needs a rate"):
        app.add_handler("memory://burst-b", print, burst=5)
    assert app.routes == []
