"""Effectively-once processing with the Idempotency middleware, on memory and SQLite:
a message delivered twice (its lease ran out after the handler succeeded, or it was
sent twice with the same key or deduplication id) runs its handler once, a failed run
does not mark the key, and a worker SIGKILLed between handler success and ack does not
run it again."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue.errors import InvalidArgument
from cloudqueue.testing.worker import serve_until
from cloudqueue.worker import (
    App,
    ClaimState,
    FailurePolicy,
    Idempotency,
    MemoryStore,
    Middleware,
    SQLiteStore,
    by_attribute,
    by_message_id,
)
from cloudqueue.worker._idempotency import by_deduplication_id

_names = itertools.count()
ORDER_ID = "order-id"
FAST = FailurePolicy(max_attempts=5, initial_delay=0.05, max_delay=0.05, jitter=0.0)


@pytest.fixture(params=["memory", "sqlite"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_queue(
    provider: str, tmp_path: Path, lease: float = 30.0, deduplicated: bool = False
) -> str:
    name = f"idem{next(_names)}-{time.monotonic_ns()}"
    url = f"memory://{name}" if provider == "memory" else f"sqlite:///{tmp_path}/idem.db?queue={name}"
    cloudqueue.declare(url, lease=lease, deduplicated=deduplicated)
    return url


def make_store(provider: str, tmp_path: Path) -> MemoryStore | SQLiteStore:
    return MemoryStore() if provider == "memory" else SQLiteStore(tmp_path / "processed.db")


def send(url: str, *orders: tuple[str, str]) -> None:
    with cloudqueue.open_producer(url) as producer:
        for body, order_id in orders:  # one by one, no deduplication id: a plain duplicate send
            producer.send(body, attributes={ORDER_ID: order_id})


def waiting(url: str) -> list[str]:
    got: list[str] = []
    with cloudqueue.open_consumer(url) as consumer:
        while batch := consumer.receive(100, 0.3):
            for message in batch:
                message.ack()
            got.extend(message.text() for message in batch)
    return got




def events(app: App) -> dict[str, int]:
    return app.routes[0].counters.events()


class HoldFirstAck(Middleware):
    """Keeps the first successful run from being acked until ``release`` is set: its
    lease runs out meanwhile and the message is delivered again."""

    def __init__(self, release: Callable[[], bool]) -> None:
        self.release = release
        self.held = False

    def before_ack(self, message: object, source: str) -> None:
        if not self.held:
            self.held = True
            deadline = time.monotonic() + 20
            while not self.release():
                assert time.monotonic() < deadline, "the redelivery never came"
                time.sleep(0.01)


class Crash(BaseException):
    """Ends a lane's run abnormally, as a crash would: the message is left to its lease."""


class AbandonFirstAck(Middleware):
    """Leaves the first successful run unacked (for coroutine lanes, which must not
    block the event loop): the message comes back when its lease runs out."""

    def __init__(self) -> None:
        self.abandoned = False

    def before_ack(self, message: object, source: str) -> None:
        if not self.abandoned:
            self.abandoned = True
            raise Crash("between handler success and ack")


@pytest.mark.parametrize("kind", ["thread", "coroutine"])
def test_redelivery_after_the_lease_ran_out_past_a_successful_handler_is_skipped(
    provider: str, kind: str, tmp_path: Path
) -> None:
    url = make_queue(provider, tmp_path, lease=1.0)
    send(url, ("order 1", "o-1"))
    app = App(concurrency=2, max_lease_extension=0)  # no renewals: the lease runs out
    store = make_store(provider, tmp_path)
    runs: list[int | None] = []
    if kind == "thread":
        # The first ack is late: sent only after the redelivery was skipped.
        hold = HoldFirstAck(release=lambda: app.counters()["skipped"] == 1)
        # The default key: sent without a deduplication id, so the message id.
        app.middleware = [Idempotency(store), hold]

        @app.handler(url)
        def handle(message: cloudqueue.ReceivedMessage) -> None:
            runs.append(message.delivery_attempt)
    else:
        app.middleware = [Idempotency(store, key=by_message_id), AbandonFirstAck()]

        @app.handler(url)
        async def handle_async(message: cloudqueue.AsyncReceivedMessage) -> None:
            runs.append(message.delivery_attempt)

    serve_until(app, lambda: app.counters()["skipped"] == 1)
    assert runs == [1]  # the second delivery (attempt 2) was acked without running
    assert events(app)["duplicates"] == 1
    assert waiting(url) == []


def test_a_duplicate_send_with_the_same_key_runs_once(provider: str, tmp_path: Path) -> None:
    url = make_queue(provider, tmp_path)
    send(url, ("first", "o-1"), ("second", "o-2"), ("first again", "o-1"))
    store = make_store(provider, tmp_path)
    app = App(concurrency=1, middleware=[Idempotency(store, key=by_attribute(ORDER_ID))])
    ran: list[str] = []

    @app.handler(url)
    def handle(message: cloudqueue.ReceivedMessage) -> None:
        ran.append(message.text())

    serve_until(app, lambda: app.counters()["processed"] + app.counters()["skipped"] == 3)
    assert sorted(ran) == ["first", "second"]
    assert (app.counters()["skipped"], events(app)["duplicates"]) == (1, 1)
    assert waiting(url) == []


def test_the_default_key_catches_a_repeat_send_with_the_same_deduplication_id(
    provider: str, tmp_path: Path
) -> None:
    # A deduplication id is accepted only where the destination deduplicates, and
    # there the provider drops a repeat within its window (5 min): the middleware
    # catches the repeats it lets through. Here: the same order sent to two
    # deduplicated queues served with one store (as after the window, with no wait).
    first, second = (make_queue(provider, tmp_path, deduplicated=True) for _ in range(2))
    with cloudqueue.open_producer(first) as producer:
        producer.send("order 1", deduplication_id="o-1")
        producer.send("no id")  # keyed by its message id
    with cloudqueue.open_producer(second) as producer:
        producer.send("order 1 again", deduplication_id="o-1")
    # hold=3: should both copies come at once, the second waits 4 s, not 121.
    app = App(concurrency=1, policy=FAST)
    app.middleware = [Idempotency(make_store(provider, tmp_path), hold=3.0)]
    ran: list[tuple[str, str | None]] = []

    def handle(message: cloudqueue.ReceivedMessage) -> None:
        ran.append((message.text(), message.deduplication_id))

    app.add_handler(first, handle)
    app.add_handler(second, handle)
    serve_until(app, lambda: app.counters()["processed"] == 2 and app.counters()["skipped"] == 1)
    # Whichever copy came first ran; the other was acked without running.
    (order,) = [entry for entry in ran if entry[0] != "no id"]
    assert sorted(ran) == sorted([("no id", None), order]) and order[1] == "o-1"
    assert waiting(first) == [] and waiting(second) == []
    undeduplicated = make_queue(provider, tmp_path)
    with cloudqueue.open_producer(undeduplicated) as producer, pytest.raises(
        cloudqueue.Unsupported, match="deduplicated=True"
    ):
        producer.send("order 1", deduplication_id="o-1")


def test_the_default_key_is_the_deduplication_id_else_the_message_id(
    provider: str, tmp_path: Path
) -> None:
    url = make_queue(provider, tmp_path, deduplicated=True)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message("a", deduplication_id="o-1"), cloudqueue.Message("b")])
    with cloudqueue.open_consumer(url) as consumer:
        got = {m.text(): m for m in consumer.receive(2, 5.0)}
        for message in got.values():
            message.ack()
    assert by_deduplication_id(got["a"]) == "deduplication-id:o-1"
    assert by_deduplication_id(got["b"]) == got["b"].id == by_message_id(got["b"])


def test_a_duplicate_arriving_while_the_first_runs_is_deferred_then_skipped(
    provider: str, tmp_path: Path
) -> None:
    url = make_queue(provider, tmp_path)
    send(url, ("first", "o-1"), ("copy", "o-1"))
    app = App(concurrency=2, policy=FAST)
    app.middleware = [Idempotency(make_store(provider, tmp_path), key=by_attribute(ORDER_ID), hold=3.0)]
    ran: list[str] = []

    @app.handler(url)
    def handle(message: cloudqueue.ReceivedMessage) -> None:
        ran.append(message.text())
        deadline = time.monotonic() + 20
        while events(app)["deferred"] == 0:  # the other copy came while this one runs
            assert time.monotonic() < deadline
            time.sleep(0.01)

    serve_until(app, lambda: app.counters()["processed"] == 1 and app.counters()["skipped"] == 1)
    assert len(ran) == 1
    assert events(app)["deferred"] == 1 and app.counters()["retried"] == 1
    assert waiting(url) == []


def test_a_failed_run_does_not_mark_the_key(provider: str, tmp_path: Path) -> None:
    url = make_queue(provider, tmp_path)
    send(url, ("flaky", "o-1"))
    store = make_store(provider, tmp_path)
    app = App(policy=FAST, middleware=[Idempotency(store, key=by_attribute(ORDER_ID))])
    attempts: list[int | None] = []

    @app.handler(url)
    def handle(message: cloudqueue.ReceivedMessage) -> None:
        attempts.append(message.delivery_attempt)
        if message.delivery_attempt == 1:
            raise ConnectionError("blip")

    serve_until(app, lambda: app.counters()["processed"] == 1)
    assert attempts == [1, 2] and app.counters()["skipped"] == 0
    assert store.claim("o-1", 1.0).state is ClaimState.DONE  # marked once it succeeded


def test_a_message_without_its_key_is_dead_lettered_with_a_clear_reason(
    provider: str, tmp_path: Path
) -> None:
    url = make_queue(provider, tmp_path)
    with cloudqueue.open_producer(url) as producer:
        producer.send("no key")
    app = App(middleware=[Idempotency(make_store(provider, tmp_path), key=by_attribute(ORDER_ID))])
    app.add_handler(url, print)
    serve_until(app, lambda: app.counters()["dead_lettered"] == 1)
    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url)) as consumer:
        (dead,) = consumer.receive(1, 5.0)
        dead.ack()
    assert "no 'order-id' attribute to use as its idempotency key" in str(dead.attributes)


WORKER = textwrap.dedent(
    """
    import os, signal, sys
    from cloudqueue.worker import App, Idempotency, Middleware, SQLiteStore, by_attribute

    url, store, side_effects, kill = sys.argv[1:5]

    class KillBeforeAck(Middleware):
        # Runs after Idempotency's before_ack (registration order): the key is
        # marked, the ack not sent. SIGKILL: no cleanup, no flush, as in a crash.
        def before_ack(self, message, source):
            os.kill(os.getpid(), signal.SIGKILL)

    middleware = [Idempotency(SQLiteStore(store), key=by_attribute("order-id"))]
    if kill == "kill":
        middleware.append(KillBeforeAck())
    app = App(middleware=middleware, max_lease_extension=0)

    @app.handler(url, concurrency=1)
    def handle(message):
        with open(side_effects, "a") as out:  # the side effect that must not happen twice
            out.write(message.text() + "\\n")

    app.run()
    """
)


def run_killed_worker(url: str, tmp_path: Path, env: dict[str, str] | None = None) -> Path:
    """Run a worker process that SIGKILLs itself between handler success and ack; the
    file of side effects it wrote."""
    script = tmp_path / "killed_worker.py"
    script.write_text(WORKER)
    side_effects = tmp_path / "side_effects.txt"
    result = subprocess.run(
        [sys.executable, str(script), url, str(tmp_path / "processed.db"), str(side_effects), "kill"],
        env=env, capture_output=True, timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    return side_effects


def test_sigkill_between_handler_success_and_ack_does_not_run_it_again(tmp_path: Path) -> None:
    url = make_queue("sqlite", tmp_path, lease=1.0)  # SQLite: the queue outlives the process
    send(url, ("order 7", "o-7"))
    side_effects = run_killed_worker(url, tmp_path)
    assert side_effects.read_text() == "order 7\n"  # it ran, then died before the ack

    app = App(middleware=[Idempotency(SQLiteStore(tmp_path / "processed.db"), key=by_attribute(ORDER_ID))])
    ran: list[str] = []
    app.add_handler(url, lambda message: ran.append(message.text()))
    serve_until(app, lambda: app.counters()["skipped"] == 1)  # redelivered when the lease ran out
    assert ran == [] and events(app)["duplicates"] == 1
    assert side_effects.read_text() == "order 7\n"
    assert waiting(url) == []


def test_stores_keep_keys_for_the_retention_only(tmp_path: Path) -> None:
    now = [0.0]
    memory = MemoryStore(clock=lambda: now[0])
    assert memory.claim("k", hold=5.0).state is ClaimState.CLAIMED
    busy = memory.claim("k", hold=5.0)
    assert busy.state is ClaimState.BUSY and busy.retry_after == 5.0
    memory.release("k")
    assert memory.claim("k", hold=5.0).state is ClaimState.CLAIMED
    memory.complete("k", retention=60.0)
    memory.release("k")  # never removes a completed key
    now[0] = 59.0
    assert memory.claim("k", hold=5.0).state is ClaimState.DONE
    now[0] = 61.0
    assert memory.claim("k", hold=5.0).state is ClaimState.CLAIMED  # retention over
    now[0] = 67.0
    assert memory.claim("k", hold=5.0).state is ClaimState.CLAIMED  # a dead holder's hold ran out

    # Two SQLiteStores on one file stand for two processes.
    first, second = SQLiteStore(tmp_path / "keys.db"), SQLiteStore(tmp_path / "keys.db")
    assert first.claim("a", hold=30.0).state is ClaimState.CLAIMED
    assert second.claim("a", hold=30.0).state is ClaimState.BUSY
    first.complete("a", retention=0.05)
    assert second.claim("a", hold=30.0).state is ClaimState.DONE
    time.sleep(0.1)
    assert second.claim("a", hold=30.0).state is ClaimState.CLAIMED
    first.close()
    second.close()


def test_claims_from_many_threads_go_to_exactly_one(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "race.db")
    others = [SQLiteStore(tmp_path / "race.db") for _ in range(3)]
    results: list[ClaimState] = []
    start = threading.Barrier(8)

    def claim(one: SQLiteStore) -> None:
        start.wait()
        results.append(one.claim("same", hold=30.0).state)

    threads = [threading.Thread(target=claim, args=(one,)) for one in [store, *others] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=lambda s: s.value) == [ClaimState.BUSY] * 7 + [ClaimState.CLAIMED]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="store must implement IdempotencyStore"):
        Idempotency(object(), key=by_message_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="key must be a function"):
        Idempotency(MemoryStore(), key="order-id")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="retention must be a number of seconds > 0"):
        Idempotency(MemoryStore(), key=by_message_id, retention=0)
    with pytest.raises(InvalidArgument, match="needs a file path"):
        SQLiteStore(":memory:")
    with pytest.raises(InvalidArgument, match="by_attribute needs an attribute name"):
        by_attribute("")


def test_a_handler_that_acks_itself_marks_the_key_at_its_ack(provider: str, tmp_path: Path) -> None:
    url = make_queue(provider, tmp_path)
    send(url, ("first", "o-1"), ("again", "o-1"))
    store = make_store(provider, tmp_path)
    app = App(concurrency=1, policy=FAST, middleware=[Idempotency(store, key=by_attribute(ORDER_ID))])
    ran: list[str] = []

    @app.handler(url)
    def acks_then_fails(message: cloudqueue.ReceivedMessage) -> None:
        ran.append(message.text())
        message.ack()
        raise RuntimeError("after the ack")  # too late to undo: the run counts as done

    serve_until(app, lambda: app.counters()["failed"] + app.counters()["skipped"] == 2)
    assert ran == ["first"] and app.counters()["skipped"] == 1
    assert waiting(url) == []


class BrokenStore(MemoryStore):
    def complete(self, key: str, retention: float) -> None:
        raise ConnectionError("store is down")


def test_a_mark_that_cannot_be_written_is_logged_and_the_message_still_acked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = make_queue("memory", Path("."))
    send(url, ("order", "o-1"))
    app = App(middleware=[Idempotency(BrokenStore(), key=by_attribute(ORDER_ID))])
    app.add_handler(url, lambda message: None)
    serve_until(app, lambda: app.counters()["processed"] == 1)
    assert waiting(url) == []
    assert any("before_ack of" in record.getMessage() and record.exc_info for record in caplog.records)
