"""cloudqueue.ops on the memory provider: what the contract suite does not cover (bad input,
the blocking twins inside a running loop, per-message failures, provenance, progress,
runs after a partial failure, deduplicated retries)."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from plugin_registration import registered

import cloudqueue
from cloudqueue import aio, ops
from cloudqueue.driver import BatchErrors, RedriveStamp, SubscriptionDriver
from cloudqueue.errors import LeaseLost
from cloudqueue.providers.memory import MemoryProvider
from cloudqueue.wire import (
    DEAD_LETTER_REASON,
    REDRIVE_DELIVERY_COUNT,
    REDRIVE_ORIGINAL_ID,
    REDRIVE_REASON,
    REDRIVE_TIME,
)

_names = itertools.count()


def fresh(prefix: str = "ops") -> str:
    return f"memory://{prefix}-{time.monotonic_ns()}-{next(_names)}"


def dead_lettered(
    url: str, messages: list[cloudqueue.Message], reason: str = "bad", *,
    ordered: bool = False, deduplicated: bool = False,
) -> list[str]:
    """Declare ``url``, send ``messages`` and dead-letter every one; their ids."""
    cloudqueue.declare(url, dead_letter_after=5, ordered=ordered, deduplicated=deduplicated)
    with cloudqueue.open_producer(url) as producer:
        ids = producer.send_batch(messages)
    with cloudqueue.open_consumer(url) as consumer:
        done = 0
        while done < len(messages):
            for message in consumer.receive(max_messages=100, wait=1.0):
                message.dead_letter(reason)
                done += 1
    return ids


def drain(url: str, count: int, timeout: float = 10.0) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    with cloudqueue.open_consumer(url) as consumer:
        while len(got) < count and time.monotonic() < deadline:
            batch = consumer.receive(max_messages=100, wait=0.5)
            for message in batch:
                message.ack()
            got.extend(batch)
    return got


def test_the_public_names() -> None:
    assert set(ops.__all__) == {
        "DeadLetterFacts", "PeekedMessage", "QueueStats", "RedriveFailure", "RedriveReport",
        "dead_letters", "peek", "redrive", "stats",
    }
    assert {"stats", "peek", "dead_letters", "redrive"} <= set(aio.__all__)
    assert "ops" in cloudqueue.__all__ and cloudqueue.ops is ops
    for name in ("stats", "peek", "dead_letters", "redrive"):
        assert asyncio.iscoroutinefunction(getattr(aio, name))


# -- bad input: named problem and limit, before anything is received -------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"limit": -1}, "limit must be None or an int from 1 to"),
        ({"limit": 0}, "limit must be None or an int from 1 to"),
        ({"limit": 2.0}, "limit must be None or an int from 1 to"),
        ({"rate": -1.0}, "rate must be None or messages per second above 0 and at most 1e+06"),
        ({"rate": float("nan")}, "rate must be None"),
        ({"rate": True}, "rate must be None"),
        ({"rate": 2e6}, "at most 1e+06"),
        ({"where": "colour=red"}, "where must be None, a cloudqueue.filters.Filter"),
        ({"where": 3}, "not int"),
        ({"dry_run": "yes"}, "dry_run must be True or False"),
        ({"progress": 5}, "progress must be None or a function"),
        ({"to": 5}, "to must be None or a destination URL"),
    ],
)
def test_redrive_refuses_bad_arguments_naming_the_problem(
    kwargs: dict[str, object], expected: str
) -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(b"kept")])
    dead_url = cloudqueue.dead_letter_url(url)
    (before,) = ops.peek(dead_url)
    with pytest.raises(cloudqueue.InvalidArgument) as raised:
        ops.redrive(dead_url, **kwargs)  # type: ignore[arg-type]
    assert expected in str(raised.value)
    (after,) = ops.peek(dead_url)
    assert after == before  # never received: not even its delivery count moved


@pytest.mark.parametrize("bad", [0, -3, 1001, 10.0, None, "5"])
def test_peek_and_dead_letters_name_the_range(bad: object) -> None:
    for call in (ops.peek, ops.dead_letters):
        with pytest.raises(cloudqueue.InvalidArgument, match=r"from 1 to 1000"):
            call(fresh(), max_messages=bad)  # type: ignore[arg-type]


def test_redrive_to_a_dead_letter_queue_is_refused() -> None:
    first, second = fresh(), fresh()
    dead_lettered(first, [cloudqueue.Message(b"a")])
    dead_lettered(second, [cloudqueue.Message(b"b")])
    with pytest.raises(cloudqueue.InvalidArgument, match="itself a dead-letter destination"):
        ops.redrive(cloudqueue.dead_letter_url(first), to=cloudqueue.dead_letter_url(second))
    assert [m.body for m in ops.dead_letters(first)] == [b"a"]


# -- the blocking twins ------------------------------------------------------------------


def test_blocking_functions_work_inside_a_running_loop() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(f"m{i}") for i in range(5)])

    async def inside() -> tuple[ops.RedriveReport, ops.QueueStats, list[ops.PeekedMessage]]:
        asyncio.get_running_loop()  # a loop runs here: asyncio.run() would refuse
        report = ops.redrive(cloudqueue.dead_letter_url(url))
        return report, ops.stats(url), ops.peek(url)

    report, stats, peeked = asyncio.run(inside())
    assert report.moved == 5
    assert stats.available == 5 and stats.dead_letters == 0
    assert [m.text() for m in peeked] == [f"m{i}" for i in range(5)]


def test_async_twins_give_the_same_answers() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(b"x", attributes={"k": "v"})], reason="why")

    async def run() -> tuple[list[ops.PeekedMessage], ops.RedriveReport]:
        letters = await aio.dead_letters(url)
        report = await aio.redrive(cloudqueue.dead_letter_url(url))
        return letters, report

    letters, report = asyncio.run(run())
    assert [(m.body, m.attributes) for m in letters] == [(b"x", {"k": "v"})]
    assert letters[0].dead_letter is not None and letters[0].dead_letter.reason == "why"
    assert (report.moved, report.reasons) == (1, {"why": 1})


# -- per-message failures and later runs ---------------------------------------------------


def test_a_message_the_target_refuses_is_a_failure_and_stays() -> None:
    url = fresh()
    crowded = {f"a{i}": "v" for i in range(99)}  # + 4 provenance > the 100 memory accepts
    ids = dead_lettered(url, [
        cloudqueue.Message(b"fine-1"), cloudqueue.Message(b"crowded", attributes=crowded),
        cloudqueue.Message(b"fine-2"),
    ])
    dead_url = cloudqueue.dead_letter_url(url)
    first = ops.redrive(dead_url)
    assert first.moved == 2
    (failure,) = first.failures
    assert failure.message_id == ids[1]
    assert "refused by the target" in failure.error and "100" in failure.error
    assert sorted(m.body for m in drain(url, 2)) == [b"fine-1", b"fine-2"]
    assert [m.body for m in ops.dead_letters(url)] == [b"crowded"]
    # A second run meets the same refusal; nothing moves twice.
    second = ops.redrive(dead_url)
    assert second.moved == 0 and [f.message_id for f in second.failures] == [ids[1]]
    assert drain(url, 1, timeout=1.0) == []
    assert [m.body for m in ops.dead_letters(url)] == [b"crowded"]


def test_keyed_dead_letters_cannot_go_to_an_unordered_target() -> None:
    ordered, plain = fresh(), fresh()
    dead_lettered(ordered, [cloudqueue.Message(b"keyed", ordering_key="k"),
                            cloudqueue.Message(b"loose")], ordered=True)
    cloudqueue.declare(plain)
    report = ops.redrive(cloudqueue.dead_letter_url(ordered), to=plain)
    assert report.moved == 1 and len(report.failures) == 1
    assert "ordering" in report.failures[0].error
    assert [m.body for m in drain(plain, 1)] == [b"loose"]
    assert [m.body for m in ops.dead_letters(ordered)] == [b"keyed"]


# -- where, provenance, progress ------------------------------------------------------------


def test_where_predicate_sees_the_dead_letter_facts() -> None:
    url = fresh()
    cloudqueue.declare(url, dead_letter_after=5)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(f"m{i}") for i in range(6)])
    with cloudqueue.open_consumer(url) as consumer:
        for message in drain_unsettled(consumer, 6):
            message.dead_letter("retryable" if int(message.text()[1:]) % 2 else "fatal")
    seen: list[ops.PeekedMessage] = []

    def only_retryable(message: ops.PeekedMessage) -> bool:
        seen.append(message)
        assert message.dead_letter is not None
        return message.dead_letter.reason == "retryable"

    report = ops.redrive(cloudqueue.dead_letter_url(url), where=only_retryable)
    assert (report.moved, report.skipped, report.reasons) == (3, 3, {"retryable": 3})
    assert sorted(m.text() for m in seen) == [f"m{i}" for i in range(6)]
    assert sorted(m.text() for m in drain(url, 3)) == ["m1", "m3", "m5"]
    assert sorted(m.text() for m in ops.dead_letters(url)) == ["m0", "m2", "m4"]


def drain_unsettled(consumer: cloudqueue.Consumer, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    while len(got) < count:
        got.extend(consumer.receive(max_messages=count - len(got), wait=1.0))
    return got


def test_provenance_after_the_delivery_limit() -> None:
    url = fresh()
    cloudqueue.declare(url, dead_letter_after=2)
    with cloudqueue.open_producer(url) as producer:
        (original_id,) = producer.send_batch([cloudqueue.Message(b"p", attributes={"a": "1"})])
    with cloudqueue.open_consumer(url) as consumer:
        for _ in range(2):
            (message,) = drain_unsettled(consumer, 1)
            message.nack()
    dead_url = cloudqueue.dead_letter_url(url)
    (letter,) = wait_for(lambda: ops.dead_letters(url))
    before = datetime.datetime.now(datetime.UTC)
    ops.redrive(dead_url)
    (back,) = drain(url, 1)
    assert back.body == b"p" and back.id != original_id
    assert back.attributes["a"] == "1"
    assert back.attributes[REDRIVE_ORIGINAL_ID] == original_id
    assert back.attributes[REDRIVE_DELIVERY_COUNT] == "2"
    assert REDRIVE_REASON not in back.attributes or back.attributes[REDRIVE_REASON]
    stamp = back.attributes[REDRIVE_TIME]
    assert stamp.endswith("Z")
    when = datetime.datetime.fromisoformat(stamp)
    assert before - datetime.timedelta(seconds=1) <= when <= datetime.datetime.now(datetime.UTC)
    assert letter.dead_letter is not None and letter.dead_letter.delivery_count == 2


def test_provenance_of_a_second_redrive_replaces_the_first() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(b"twice")], reason="first")
    ops.redrive(cloudqueue.dead_letter_url(url))
    with cloudqueue.open_consumer(url) as consumer:
        (again,) = drain_unsettled(consumer, 1)
        second_id = again.id
        again.dead_letter("second")
    wait_for(lambda: ops.dead_letters(url))
    ops.redrive(cloudqueue.dead_letter_url(url))
    (back,) = drain(url, 1)
    assert back.attributes[REDRIVE_REASON] == "second"
    assert back.attributes[REDRIVE_ORIGINAL_ID] == second_id


def test_progress_is_called_after_each_batch_with_the_report_so_far() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(f"m{i}") for i in range(25)])
    calls: list[tuple[int, float]] = []

    def progress(report: ops.RedriveReport) -> None:
        calls.append((report.moved, report.elapsed))

    report = ops.redrive(cloudqueue.dead_letter_url(url), rate=100.0, progress=progress)
    assert report.moved == 25
    moved = [moved for moved, _ in calls]
    assert moved == sorted(moved) and moved[-1] == 25 and len(calls) >= 3  # batches of 10
    assert all(elapsed > 0 for _, elapsed in calls)


def test_a_failing_progress_callback_stops_the_run_and_gives_everything_back() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(f"m{i}") for i in range(30)])

    def progress(report: ops.RedriveReport) -> None:
        raise RuntimeError("the terminal went away")

    with pytest.raises(RuntimeError, match="terminal"):
        ops.redrive(cloudqueue.dead_letter_url(url), rate=100.0, progress=progress)
    moved = drain(url, 30, timeout=1.0)
    left = ops.dead_letters(url, max_messages=100)
    # Sent-then-acked ones are at the source, the rest are back in the DLQ at once.
    assert sorted(m.text() for m in moved + left) == sorted(f"m{i}" for i in range(30))
    assert 0 < len(moved) < 30


def test_dry_run_reports_what_would_fail_too() -> None:
    url = fresh()
    crowded = {f"a{i}": "v" for i in range(99)}
    dead_lettered(url, [cloudqueue.Message(b"ok"), cloudqueue.Message(b"no", attributes=crowded)])
    report = ops.redrive(cloudqueue.dead_letter_url(url), dry_run=True)
    assert (report.dry_run, report.moved, len(report.failures)) == (True, 1, 1)
    assert sorted(m.body for m in ops.dead_letters(url)) == [b"no", b"ok"]


def test_a_dry_run_reports_progress_too() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(f"m{i}") for i in range(7)])
    seen: list[int] = []
    report = ops.redrive(
        cloudqueue.dead_letter_url(url), dry_run=True, progress=lambda r: seen.append(r.moved)
    )
    assert report.moved == 7 and seen and seen[-1] == 7


def test_report_names_both_ends_without_secrets() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(b"x")])
    report = ops.redrive(cloudqueue.dead_letter_url(url))
    assert report.source == cloudqueue.dead_letter_url(url) and report.target == url
    assert report.rate > 0


# -- deduplicated targets: a retried redrive is dropped --------------------------------------


class AcksFailProvider(MemoryProvider):
    """Memory, under another scheme, whose dead-letter acks can be made to fail: the send
    of a redrive is confirmed, the removal from the DLQ is not."""

    schemes = ("opsacks",)

    def __init__(self) -> None:
        super().__init__()
        self.fail_acks = False

    def open_subscription(self, url: cloudqueue.driver.Url) -> SubscriptionDriver:
        driver = super().open_subscription(url)
        provider = self
        plain_ack = driver.ack

        def ack(tokens: Sequence[object]) -> BatchErrors:
            if provider.fail_acks and url.host.endswith("dlq"):
                return [LeaseLost("the lease ended before the ack") for _ in tokens]
            return plain_ack(tokens)

        async def aack(tokens: Sequence[object]) -> BatchErrors:
            return ack(tokens)

        driver.ack = ack  # type: ignore[method-assign]
        driver.aack = aack  # type: ignore[method-assign]
        return driver


@pytest.fixture
def acks_fail() -> Iterator[AcksFailProvider]:
    provider = AcksFailProvider()
    with registered(provider, "ops-acks-fail"):
        yield provider


def test_a_retried_redrive_is_dropped_by_a_deduplicating_target(
    acks_fail: AcksFailProvider,
) -> None:
    url = "opsacks://orders"
    dead_lettered(url, [cloudqueue.Message(b"once", deduplication_id="order-7"),
                        cloudqueue.Message(b"twice", deduplication_id="order-8")],
                  deduplicated=True)
    dead_url = cloudqueue.dead_letter_url(url)
    assert dead_url.endswith("dlq")
    cloudqueue.declare(dead_url, lease=0.5)
    acks_fail.fail_acks = True
    first = ops.redrive(dead_url)
    # Sent, but the acks fail: the dead letters come back within the run (lease 0.5 s)
    # and are held, not sent again, so the run ends; they stay in the DLQ, as failures.
    assert first.moved == 0  # both came back: not removed after all
    assert sorted(f.message_id for f in first.failures) == sorted(m.id for m in ops.dead_letters(url))
    assert all("ack failed" in f.error for f in first.failures) and len(first.failures) == 2
    acks_fail.fail_acks = False
    again = ops.redrive(dead_url)
    assert again.moved == 2 and again.failures == []  # sent again, same deduplication ids...
    got = drain(url, 4, timeout=1.5)
    assert sorted(m.body for m in got) == [b"once", b"twice"]  # ...so dropped: one copy each
    assert ops.dead_letters(url) == []


def wait_for(check: object, timeout: float = 5.0) -> list[ops.PeekedMessage]:
    deadline = time.monotonic() + timeout
    while True:
        got = check()  # type: ignore[operator]
        if got or time.monotonic() > deadline:
            return got  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_ctrl_c_stops_a_blocking_redrive_and_gives_back_what_it_held() -> None:
    url = fresh()
    dead_lettered(url, [cloudqueue.Message(f"m{i}") for i in range(40)])
    interrupted = threading.Event()

    def progress(report: ops.RedriveReport) -> None:
        if report.moved >= 10 and not interrupted.is_set():
            interrupted.set()
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does: a signal to the process

    with pytest.raises(KeyboardInterrupt):
        ops.redrive(cloudqueue.dead_letter_url(url), rate=20.0, progress=progress)
    moved = drain(url, 40, timeout=1.0)
    left = ops.dead_letters(url, max_messages=100)  # given back at once: no lease to wait for
    assert sorted([m.text() for m in moved] + [m.text() for m in left]) == sorted(
        f"m{i}" for i in range(40)
    )
    assert 10 <= len(moved) < 40  # stopped before its end


# -- moves in place (SubscriptionDriver.move_dead_letters) -------------------------------------


def test_the_stamp_drops_markers_and_earlier_provenance_and_adds_this_redrives() -> None:
    limits = cloudqueue.capabilities("memory://stamp").limits
    stamp = RedriveStamp("2026-11-29T15:00:00.000Z", limits, ordering=False)
    stored = {"kind": "a", DEAD_LETTER_REASON: "given", REDRIVE_REASON: "an older run's"}
    assert stamp.attributes(stored, "dl-1", "given", 3) == {
        "kind": "a", REDRIVE_ORIGINAL_ID: "dl-1", REDRIVE_REASON: "given",
        REDRIVE_DELIVERY_COUNT: "3", REDRIVE_TIME: "2026-11-29T15:00:00.000Z",
    }
    # The id at the source wins over the dead letter's own; unknown facts are left out.
    assert stamp.attributes({}, "dl-2", None, None, original_id="src-2") == {
        REDRIVE_ORIGINAL_ID: "src-2", REDRIVE_TIME: "2026-11-29T15:00:00.000Z",
    }


def test_the_stamp_accepts_only_what_the_target_surely_takes() -> None:
    limits = cloudqueue.capabilities("memory://stamp").limits
    unordered = RedriveStamp("t", limits, ordering=False)
    assert unordered.accepts(b"body", {"a": "1"}, None)
    assert not unordered.accepts(b"body", {"a": "1"}, "key")  # keyed, target unordered
    assert RedriveStamp("t", limits, ordering=True).accepts(b"body", {"a": "1"}, "key")
    too_many = {f"a{index}": "v" for index in range(limits.max_attributes + 1)}
    assert not unordered.accepts(b"", too_many, None)
    long_reason = {REDRIVE_REASON: "é" * (limits.max_attribute_value_bytes // 2 + 1)}
    assert not unordered.accepts(b"", long_reason, None)  # counted in bytes, not characters
    assert not unordered.accepts(b"x" * limits.max_message_bytes, {"a": "1"}, None)
    assert unordered.accepts(b"x" * (limits.max_message_bytes - 2), {"a": "1"}, None)


class MovesProvider(MemoryProvider):
    """Memory, under another scheme, whose subscriptions offer a move in place that
    records each call and answers as told (by default: moved nothing)."""

    schemes = ("opsmove",)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, RedriveStamp]] = []
        self.answer: list[str | None] | None = None  # None: moved nothing

    def open_subscription(self, url: cloudqueue.driver.Url) -> SubscriptionDriver:
        driver = super().open_subscription(url)
        provider = self

        def can_move_dead_letters(target: object) -> bool:
            return True

        def move_dead_letters(
            target: object, max_messages: int, stamp: RedriveStamp
        ) -> list[str | None]:
            provider.calls.append((max_messages, stamp))
            return [] if provider.answer is None else provider.answer[:max_messages]

        driver.can_move_dead_letters = can_move_dead_letters  # type: ignore[method-assign,assignment]
        driver.move_dead_letters = move_dead_letters  # type: ignore[method-assign,assignment]
        return driver


@pytest.fixture
def moves() -> Iterator[MovesProvider]:
    provider = MovesProvider()
    with registered(provider, "ops-moves"):
        yield provider


def test_a_plain_redrive_asks_for_a_move_in_place_first_then_takes_the_rest(
    moves: MovesProvider,
) -> None:
    url = f"opsmove://plain-{next(_names)}"
    dead_lettered(url, [cloudqueue.Message(f"m{i}") for i in range(3)])
    report = ops.redrive(cloudqueue.dead_letter_url(url))
    assert report.moved == 3 and report.reasons == {"bad": 3}  # moved the portable way
    ((asked, stamp),) = moves.calls  # one call moved nothing: the engine went on without
    assert asked == 1000 and stamp.ordering is False
    assert datetime.datetime.fromisoformat(stamp.time).utcoffset() == datetime.timedelta(0)
    assert sorted(m.body for m in drain(url, 3)) == [b"m0", b"m1", b"m2"]


def test_what_a_move_in_place_reports_is_counted_and_limited(moves: MovesProvider) -> None:
    url = f"opsmove://limited-{next(_names)}"
    dead_lettered(url, [cloudqueue.Message(b"stays")])
    moves.answer = ["timeout"] * 5 + [None] * 5
    seen: list[int] = []
    report = ops.redrive(cloudqueue.dead_letter_url(url), limit=7,
                         progress=lambda so_far: seen.append(so_far.moved))
    # The limit is passed on, and reached by the move alone: no receive follows.
    assert [asked for asked, _ in moves.calls] == [7]
    assert report.moved == 7 and report.reasons == {"timeout": 5, "": 2}
    assert seen == [7]
    assert [m.body for m in ops.dead_letters(url)] == [b"stays"]


@pytest.mark.parametrize(
    "options",
    [{"where": lambda message: True}, {"rate": 1000.0}, {"dry_run": True}],
    ids=["where", "rate", "dry_run"],
)
def test_no_move_in_place_where_the_options_need_each_message_seen(
    moves: MovesProvider, options: dict[str, object]
) -> None:
    url = f"opsmove://options-{next(_names)}"
    dead_lettered(url, [cloudqueue.Message(b"one")])
    moves.answer = ["would be wrong"]
    report = ops.redrive(cloudqueue.dead_letter_url(url), **options)  # type: ignore[arg-type]
    assert moves.calls == [] and report.moved == 1 and report.reasons == {"bad": 1}


def test_no_move_in_place_to_a_deduplicating_target(moves: MovesProvider) -> None:
    url = f"opsmove://dedup-{next(_names)}"
    dead_lettered(url, [cloudqueue.Message(b"one", deduplication_id="d-1")], deduplicated=True)
    moves.answer = ["would be wrong"]
    report = ops.redrive(cloudqueue.dead_letter_url(url))
    assert moves.calls == [] and report.moved == 1
