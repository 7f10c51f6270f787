"""Operations (``cloudqueue.ops``): statistics, peek, dead letters and redrive, through
the public API, driven by the harness's operations claims (see :class:`Harness`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest

import cloudqueue
from cloudqueue import aio, ops
from cloudqueue.wire import (
    DEAD_LETTER_REASON,
    REDRIVE_ATTRIBUTES,
    REDRIVE_DELIVERY_COUNT,
    REDRIVE_ORIGINAL_ID,
    REDRIVE_REASON,
    REDRIVE_TIME,
)

from ._base import SuiteBase, collect, quiet_for
from ._harness import Destination, Harness, eventually

__all__ = ["Operations"]

_COUNT_FIELDS = (
    "available", "in_flight", "delayed", "dead_letters", "oldest_age", "total_sent",
    "total_received",
)
#: The subprocess of the SIGKILL case: redrives, printing the count moved after each batch.
_REDRIVE_SCRIPT = """
import sys
from cloudqueue import ops

def progress(report):
    print(report.moved, flush=True)

ops.redrive(sys.argv[1], to=sys.argv[2], rate=float(sys.argv[3]), progress=progress)
"""


def _no_dead_letters(harness: Harness) -> tuple[type[cloudqueue.QueueError], ...]:
    """What reading the dead letters of a destination without any raises: Unsupported,
    or NotFound where the provider could declare a dead-letter destination but this one
    has none."""
    if harness.provider_declares_dead_letters:
        return (cloudqueue.Unsupported, cloudqueue.NotFound)
    return (cloudqueue.Unsupported,)


def _fill_dead_letters(
    dest: Destination, messages: list[cloudqueue.Message], reason: Callable[[int], str],
    timeout: float,
) -> list[str]:
    """Send ``messages``, then receive and dead-letter each once; the ids they were sent with.

    Delivery is at least once: on a loaded machine a lease can lapse while a batch is
    being dead-lettered one by one, and the message comes again (on SQS the stale receipt
    handle's delete then leaves it in the queue). Such an echo is acked, not dead-lettered
    a second time, so the dead-letter queue holds each message once and the source none.
    Receives stay small so that a batch is handled well within its lease."""
    with cloudqueue.open_producer(dest.producer_url) as producer:
        ids = producer.send_batch(messages)
    position = {message.body: index for index, message in enumerate(messages)}
    dead_lettered: set[bytes] = set()
    with cloudqueue.open_consumer(dest.consumer_url) as consumer:
        deadline = time.monotonic() + timeout
        while len(dead_lettered) < len(messages):
            assert time.monotonic() < deadline, (
                f"dead-lettered {len(dead_lettered)} of {len(messages)}")
            for received in consumer.receive(max_messages=10, wait=1.0):
                if received.body in dead_lettered:
                    received.ack()
                    continue
                received.dead_letter(reason(position[received.body]))
                dead_lettered.add(received.body)
    return ids


def _drain(url: str, count: int, timeout: float) -> list[cloudqueue.ReceivedMessage]:
    """Receive (and ack) until ``count`` different bodies came, one message per body.

    Delivery is at least once: on a loaded machine a standard SQS queue hands a message
    out again when its visibility lapsed between a renewal and the ack, so counting
    messages instead of bodies stopped early with duplicates in and messages missing.
    Where a body comes twice, the redriven copy (with provenance) is kept: the other is
    an at-least-once echo of the message before it was dead-lettered."""
    by_body: dict[bytes, cloudqueue.ReceivedMessage] = {}
    deadline = time.monotonic() + timeout
    with cloudqueue.open_consumer(url) as consumer:
        while len(by_body) < count and time.monotonic() < deadline:
            for message in collect(consumer, count - len(by_body), deadline - time.monotonic()):
                kept = by_body.get(message.body)
                if kept is None or REDRIVE_ORIGINAL_ID not in kept.attributes:
                    by_body[message.body] = message
    return list(by_body.values())


def _dead_letter_queue_is_empty(dead_url: str, harness: Harness) -> bool:
    with cloudqueue.open_consumer(dead_url) as consumer:
        left = quiet_for(consumer, 1.0 + harness.timer_slack)
        for message in left:
            message.nack()
        return not left


class Operations(SuiteBase):
    # -- stats -------------------------------------------------------------------------

    def test_stats_reflect_sends_receives_acks_and_dead_letters(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        dead_letters = harness.supports_dead_letter
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests) if dead_letters \
            else make()
        fields = harness.stats_fields
        if not fields:
            try:
                known = ops.stats(dest.consumer_url)
            except cloudqueue.Unsupported:
                return
            assert all(getattr(known, name) is None for name in _COUNT_FIELDS), known
            assert known.exact is False
            return
        budget = self.wait_budget(harness, 10)

        def expect(**wanted: int) -> None:
            claimed = {name: value for name, value in wanted.items() if name in fields}

            def read() -> ops.QueueStats | None:
                got = ops.stats(dest.consumer_url)
                for name in _COUNT_FIELDS:  # never a guess where the provider cannot know
                    if name not in fields:
                        assert getattr(got, name) is None, (name, got)
                ok = all(getattr(got, name) == value for name, value in claimed.items())
                return got if ok else None

            # Settlements travel in the background: even exact counts are polled for.
            got = eventually(read, budget, interval=0.1)
            assert got.exact is harness.stats_exact, got
            if "oldest_age" in fields and wanted.get("available", 0):
                assert got.oldest_age is not None and got.oldest_age >= 0

        expect(available=0, in_flight=0, dead_letters=0, total_sent=0, total_received=0)
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(f"s{i}") for i in range(5)])
            if harness.supports_delayed_delivery:
                producer.send(b"later", delay=600.0)
        delayed = 1 if harness.supports_delayed_delivery else 0
        expect(available=5, in_flight=0, delayed=delayed, total_sent=5 + delayed)
        with cloudqueue.open_consumer(dest.consumer_url, max_in_flight=3) as consumer:
            held = collect(consumer, 3, timeout=budget, ack=False)
            assert len(held) == 3
            expect(available=2, in_flight=3, total_received=3)
            held[0].ack()
            if dead_letters:
                held[1].dead_letter("stats")
            else:
                held[1].ack()
            # Settlements go in the background: wait until the count says so.
            expect(available=2, in_flight=1, dead_letters=1 if dead_letters else 0)
            held[2].ack()
        expect(available=2, in_flight=0, delayed=delayed)

    # -- peek ----------------------------------------------------------------------------

    def test_peek_leaves_what_a_later_receive_gets_unchanged(
        self, dest: Destination, harness: Harness
    ) -> None:
        sent = [
            cloudqueue.Message(bytes([index, 0xFF, 0x00]) + b"peek", attributes={"n": str(index)})
            for index in range(3)
        ]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            ids = producer.send_batch(sent)
        if not harness.native_peek and cloudqueue.capabilities(dest.consumer_url).ordering:
            # This harness's destinations keep order: see the ordered case below.
            with pytest.raises(cloudqueue.Unsupported, match="order"):
                ops.peek(dest.consumer_url)
            return
        peeked = ops.peek(dest.consumer_url, max_messages=10)
        assert sorted(m.id for m in peeked) == sorted(ids)
        by_id = {m.id: m for m in peeked}
        for message_id, original in zip(ids, sent, strict=True):
            assert by_id[message_id].body == original.body
            assert by_id[message_id].attributes == original.attributes
            assert by_id[message_id].dead_letter is None
        if harness.native_peek:
            assert [m.id for m in peeked] == ids  # oldest first
        received = _drain(dest.consumer_url, 3, timeout=self.wait_budget(harness, 0))
        assert sorted(m.id for m in received) == sorted(ids)
        for got in received:
            assert got.body == by_id[got.id].body
            assert got.attributes == by_id[got.id].attributes
            if not harness.supports_delivery_attempt:
                continue
            # A native peek counts no delivery; receive-and-release counts exactly one.
            assert got.delivery_attempt == (1 if harness.native_peek else 2)

    def test_peek_on_an_ordered_destination_needs_native_peek(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_ordering:
            dest = make()
            assert not cloudqueue.capabilities(dest.consumer_url).ordering
            return
        dest = make(ordered=True)
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"first", ordering_key="k")
        if not harness.native_peek:
            with pytest.raises(cloudqueue.Unsupported, match="order"):
                ops.peek(dest.consumer_url)
            return
        (peeked,) = ops.peek(dest.consumer_url)
        assert peeked.ordering_key == "k" and peeked.body == b"first"

    def test_peek_refuses_bad_counts_before_reading(self, dest: Destination) -> None:
        for bad in (0, 1001, -1, 2.5):
            with pytest.raises(cloudqueue.InvalidArgument, match="1000"):
                ops.peek(dest.consumer_url, max_messages=bad)  # type: ignore[arg-type]

    # -- dead letters --------------------------------------------------------------------

    def test_dead_letters_show_the_reason_without_markers(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            dest = make()
            with pytest.raises(_no_dead_letters(harness)):
                ops.dead_letters(dest.consumer_url)
            return
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        sent = [cloudqueue.Message(b"bad", attributes={"kind": "bad"})]
        (sent_id,) = _fill_dead_letters(dest, sent, lambda _: "schema mismatch", timeout=60)
        found = eventually(lambda: ops.dead_letters(dest.consumer_url), self.wait_budget(harness, 2))
        (letter,) = found
        assert letter.body == b"bad"
        assert letter.attributes == {"kind": "bad"}
        assert DEAD_LETTER_REASON not in letter.attributes
        assert letter.dead_letter is not None
        assert letter.dead_letter.reason == "schema mismatch"
        assert (letter.dead_letter.original_id or letter.id) == sent_id

    # -- redrive -------------------------------------------------------------------------

    def test_redrive_restores_a_thousand_dead_letters_byte_for_byte(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            dest = make()
            with pytest.raises(_no_dead_letters(harness)):
                ops.redrive(cloudqueue.dead_letter_url(dest.consumer_url))
            return
        ordered = harness.supports_ordering
        dest = make(ordered=ordered, dead_letter_after=harness.dead_letter_after_for_tests)
        count = 1000
        sent = [
            cloudqueue.Message(
                index.to_bytes(2, "big") + bytes([0x80, 0xFE, index % 256]) + b" payload",
                attributes={"set": str(index % 10), f"field{index % 10}": "é" * (index % 10 + 1)},
                ordering_key=f"key-{index % 10}" if ordered else None,
            )
            for index in range(count)
        ]
        reasons = ("timeout", "schema", "poison")
        ids = _fill_dead_letters(dest, sent, lambda i: reasons[i % 3], timeout=600)
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
        before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)

        report = ops.redrive(dead_url)

        assert report.moved == count and report.failures == [] and report.skipped == 0
        assert report.reasons == {reason: count // 3 + (i < count % 3)
                                  for i, reason in enumerate(reasons)}
        assert report.dry_run is False and report.elapsed > 0
        received = _drain(dest.consumer_url, count, timeout=self.wait_budget(harness, 60))
        assert len(received) == count
        index_of = {message.body: index for index, message in enumerate(sent)}
        assert sorted(index_of[m.body] for m in received) == list(range(count))
        for message in received:
            index = index_of[message.body]
            attributes = dict(message.attributes)
            provenance = {name: attributes.pop(name) for name in REDRIVE_ATTRIBUTES
                          if name in attributes}
            assert attributes == sent[index].attributes
            assert message.ordering_key == sent[index].ordering_key
            assert provenance[REDRIVE_ORIGINAL_ID] == ids[index]
            assert provenance[REDRIVE_REASON] == reasons[index % 3]
            redriven_at = datetime.datetime.fromisoformat(provenance[REDRIVE_TIME])
            assert redriven_at.utcoffset() == datetime.timedelta(0) and redriven_at >= before
            if REDRIVE_DELIVERY_COUNT in provenance:
                assert int(provenance[REDRIVE_DELIVERY_COUNT]) >= 1
        if ordered and cloudqueue.capabilities(dead_url).ordering:
            for key in {m.ordering_key for m in received}:
                got = [index_of[m.body] for m in received if m.ordering_key == key]
                assert got == sorted(got), f"order of {key} changed"
        assert _dead_letter_queue_is_empty(dead_url, harness)

    def test_redrive_stamps_the_same_with_or_without_a_where(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        """A run with ``where`` receives and sends; one without may be moved in place by
        the provider (SubscriptionDriver.move_dead_letters): users see no difference."""
        if not harness.supports_dead_letter:
            return  # the 1,000 case already asserted Unsupported
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        sent = [cloudqueue.Message(f"s{i}", attributes={"i": str(i), "path": "x"})
                for i in range(8)]
        ids = _fill_dead_letters(dest, sent, lambda i: f"reason {i % 2}", timeout=120)
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)

        portable = ops.redrive(dead_url, where=lambda m: int(m.attributes["i"]) < 4)
        native = ops.redrive(dead_url)

        for report in (portable, native):
            assert (report.moved, report.failures) == (4, [])
            assert report.reasons == {"reason 0": 2, "reason 1": 2}
            assert report.target == portable.target and report.source == portable.source
        assert portable.skipped == 4 and native.skipped == 0
        received = _drain(dest.consumer_url, 8, timeout=self.wait_budget(harness, 10))
        by_index = {int(m.attributes["i"]): m for m in received}
        assert sorted(by_index) == list(range(8))
        for index, message in by_index.items():
            attributes = dict(message.attributes)
            assert attributes.pop(REDRIVE_ORIGINAL_ID) == ids[index]
            assert attributes.pop(REDRIVE_REASON) == f"reason {index % 2}"
            datetime.datetime.fromisoformat(attributes.pop(REDRIVE_TIME))
            count = attributes.pop(REDRIVE_DELIVERY_COUNT, None)
            assert count is None or int(count) >= 1
            assert attributes == sent[index].attributes
        # The same provenance names on both halves: a move in place adds none and drops none.
        names = {frozenset(m.attributes) for m in received}
        assert len(names) == 1, names

    def test_redrive_reports_one_the_target_refuses_and_moves_the_rest(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            return
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        most = cloudqueue.capabilities(dest.producer_url).limits.max_attributes
        # One short of the limit, so that a provider that marks dead letters with an
        # attribute (Pub/Sub) can still dead-letter it; the provenance (3 or 4
        # attributes) takes it over the target's limit.
        full = {f"a{index}": "v" for index in range(most - 1)}
        sent = [
            cloudqueue.Message(b"first", attributes={"n": "1"}),
            cloudqueue.Message(b"full", attributes=full),
            cloudqueue.Message(b"last", attributes={"n": "3"}),
        ]
        _fill_dead_letters(dest, sent, lambda _: "bad", timeout=60)

        report = ops.redrive(cloudqueue.dead_letter_url(dest.consumer_url))

        assert report.moved == 2 and report.reasons == {"bad": 2}
        (failure,) = report.failures
        assert "refused by the target" in failure.error and str(most) in failure.error
        received = _drain(dest.consumer_url, 2, timeout=self.wait_budget(harness, 10))
        assert sorted(m.body for m in received) == [b"first", b"last"]
        (left,) = eventually(lambda: ops.dead_letters(dest.consumer_url),
                             self.wait_budget(harness, 2))
        assert left.body == b"full" and left.attributes == full
        assert left.dead_letter is not None and left.dead_letter.reason == "bad"
        assert failure.message_id == left.id  # the report names the one left behind

    def test_redrive_where_limit_and_dry_run(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            return  # the 1,000 case already asserted Unsupported
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        colours = ["red", "blue"]
        sent = [cloudqueue.Message(f"w{i}", attributes={"colour": colours[i % 2]})
                for i in range(20)]
        _fill_dead_letters(dest, sent, lambda _: "bad", timeout=120)
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
        red = cloudqueue.where("colour").equals("red")

        dry = ops.redrive(dead_url, where=red, dry_run=True)
        assert (dry.dry_run, dry.moved, dry.skipped, dry.failures) == (True, 10, 10, [])
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            assert quiet_for(consumer, 1.0 + harness.timer_slack) == []

        limited = ops.redrive(dead_url, where=red, limit=4)
        assert limited.moved == 4 and limited.failures == []
        rest = ops.redrive(dead_url, where=lambda m: m.attributes["colour"] == "red")
        assert rest.moved == 6
        blue = ops.redrive(dead_url)
        assert blue.moved == 10 and blue.skipped == 0
        received = _drain(dest.consumer_url, 20, timeout=self.wait_budget(harness, 10))
        assert sorted(m.text() for m in received) == sorted(m.body.decode() for m in sent)

    def test_redrive_rate_is_a_cap(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            return
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        count, rate = 12, 8.0
        _fill_dead_letters(dest, [cloudqueue.Message(f"r{i}") for i in range(count)],
                           lambda _: "bad", timeout=120)
        started = time.monotonic()
        report = ops.redrive(cloudqueue.dead_letter_url(dest.consumer_url), rate=rate)
        wall = time.monotonic() - started
        assert report.moved == count
        # Measured over the run: the cap bounds it however fast the provider is.
        assert count / wall <= rate and report.rate <= rate

    def test_redrive_refuses_bad_arguments_before_receiving(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            return
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        _fill_dead_letters(dest, [cloudqueue.Message(b"stay")], lambda _: "bad", timeout=60)
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
        for kwargs, words in (
            ({"limit": -1}, "limit"), ({"rate": -5.0}, "rate"), ({"rate": 0}, "rate"),
            ({"where": "colour=red"}, "where"), ({"to": dead_url}, "dead-letter"),
        ):
            with pytest.raises(cloudqueue.InvalidArgument, match=words):
                ops.redrive(dead_url, **kwargs)
        # Nothing was received: the dead letter is still there, unharmed.
        (letter,) = ops.dead_letters(dest.consumer_url)
        assert letter.body == b"stay"

    def test_redrive_to_a_deduplicated_target_is_not_dropped_by_the_original_id(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not (harness.supports_deduplication and harness.supports_dead_letter):
            return  # Unsupported deduplication is asserted by the Properties cases
        dest = make(deduplicated=True, dead_letter_after=harness.dead_letter_after_for_tests)
        message = cloudqueue.Message(b"once", deduplication_id="order-1")
        _fill_dead_letters(dest, [message], lambda _: "bad", timeout=60)
        report = ops.redrive(cloudqueue.dead_letter_url(dest.consumer_url))
        assert report.moved == 1
        (back,) = _drain(dest.consumer_url, 1, timeout=self.wait_budget(harness, 5))
        assert back.body == b"once"

    def test_redrive_interrupted_halfway_and_run_again_loses_nothing(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            return
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests)
        count = 60
        bodies = [f"k{i}".encode() for i in range(count)]
        _fill_dead_letters(dest, [cloudqueue.Message(b) for b in bodies], lambda _: "bad",
                           timeout=120)
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
        dead_lease = dest.lease
        with contextlib.suppress(cloudqueue.QueueError):  # where the DLQ takes a lease of its own
            cloudqueue.declare(dead_url, lease=harness.short_lease)
            dead_lease = harness.short_lease
        if cloudqueue.capabilities(dest.consumer_url).durable:
            self._kill_a_redrive_process(harness, dead_url, dest.consumer_url, count)
        else:
            asyncio.run(_cancel_a_redrive_halfway(dead_url, dest.consumer_url, count))
        # The interrupted run's leases on dead letters end at most one lease after it
        # stopped: only then is every one of them receivable again.
        time.sleep(dead_lease + harness.timer_slack * 2)
        second = ops.redrive(dead_url, to=dest.consumer_url)
        assert second.failures == []
        seen: Counter[bytes] = Counter()
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            deadline = time.monotonic() + self.wait_budget(harness, 10)
            while set(seen) != set(bodies) and time.monotonic() < deadline:
                seen.update(m.body for m in collect(consumer, 1, timeout=1.0))
            # Copies sent twice arrive with the rest: wait a little for stragglers.
            seen.update(m.body for m in collect(consumer, count, timeout=1.0 + harness.timer_slack))
        assert set(seen) == set(bodies), "a dead letter was lost"
        assert max(seen.values()) <= 2
        assert _dead_letter_queue_is_empty(dead_url, harness)

    def _kill_a_redrive_process(
        self, harness: Harness, dead_url: str, target: str, count: int
    ) -> None:
        with subprocess.Popen(
            [sys.executable, "-c", _REDRIVE_SCRIPT, dead_url, target, "40"],
            stdout=subprocess.PIPE, env=harness.process_env(), text=True,
        ) as process:
            assert process.stdout is not None
            moved = 0
            for line in process.stdout:
                moved = int(line)
                if moved >= count // 2:
                    break
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        assert count // 2 <= moved < count, f"killed after {moved} of {count}"

    # -- topic subscriptions -------------------------------------------------------------

    def test_redriving_one_subscription_never_reaches_a_sibling(
        self, make: Callable[..., Destination], harness: Harness
    ) -> None:
        if not (harness.supports_fan_out and harness.supports_dead_letter):
            return
        dest = make(subscriptions=2, dead_letter_after=harness.dead_letter_after_for_tests)
        (sibling,) = dest.other_subscriptions
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"fan", attributes={"n": "1"})
        with cloudqueue.open_consumer(sibling) as consumer:
            assert len(collect(consumer, 1, timeout=30)) == 1
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            message.dead_letter("bad")
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
        if not harness.redrive_subscription:
            with pytest.raises(cloudqueue.Unsupported, match="subscription"):
                ops.redrive(dead_url)
            return
        assert ops.redrive(dead_url).moved == 1
        (back,) = _drain(dest.consumer_url, 1, timeout=self.wait_budget(harness, 5))
        assert back.body == b"fan"
        with cloudqueue.open_consumer(sibling) as consumer:
            assert quiet_for(consumer, 1.0 + harness.timer_slack) == []


async def _cancel_a_redrive_halfway(dead_url: str, target: str, count: int) -> None:
    """The in-process stand-in for SIGKILL where destinations do not outlive the process:
    the run is cancelled once half is moved, between a send and its ack if it may."""
    halfway = asyncio.Event()

    def progress(report: ops.RedriveReport) -> None:
        if report.moved >= count // 2:
            halfway.set()

    run = asyncio.create_task(aio.redrive(dead_url, to=target, rate=40.0, progress=progress))
    await halfway.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
