"""Connection faults: every connection between the SDK and its server cut for a few
seconds mid-send, mid-receive, and while acks wait to be sent.

Not part of :class:`~cloudqueue.testing.contract.ContractSuite`: a provider that talks
to a server over the network opts in beside it, with a harness that can cut its
connections (see :attr:`Harness.fault_proxy <cloudqueue.testing.contract.Harness.fault_proxy>`)::

    import pytest
    from cloudqueue.testing.contract import ConnectionFaults
    from cloudqueue.testing.faultproxy import FaultProxy

    class TestExampleConnectionFaults(ConnectionFaults):
        @pytest.fixture
        def harness(self, server):
            with FaultProxy("127.0.0.1", server.port) as proxy:
                harness = ExampleHarness(endpoint=f"127.0.0.1:{proxy.port}")
                harness.fault_proxy = proxy
                yield harness

Each case cuts every connection for :attr:`ConnectionFaults.cut_seconds` and counts
messages by body. What it holds the provider (and the portable layer) to:

- **Nothing reported sent is lost.** Every body that ``send``/``send_batch`` returned
  for (or that a ``SendBatchError`` gave an id) is received eventually. A send that
  raised may or may not have been delivered: its bodies may be missing.
- **At least once.** A body received more than once is counted as a duplicate, not a
  failure: a send whose answer the cut lost is sent again, and may arrive twice.
- **An acked message comes back only if its ack failed.** ``ack()`` queues the ack; the
  consumer sends it in the background and reports a failed one as a warning on the
  ``cloudqueue`` logger ("N of M ack settlements on ... failed"): such a message is
  delivered again after its lease. Failures are reported in number, not per message,
  so the cases assert that the acked messages that come back (by id) are no more than the acks
  reported failed.
- **Recovery by themselves.** Producers and consumers opened before the cut are used
  after it, never reopened. The first success after the connections are restored
  comes within :attr:`ConnectionFaults.recovery_bound` seconds.
- **Only ``QueueError`` escapes.** An error raised during the cut is a
  :class:`cloudqueue.QueueError`; anything else fails the case.

Destinations are declared with a lease of :attr:`ConnectionFaults.fault_lease` seconds,
well beyond a cut and the recovery after it, so that an ack delayed by the cut can
still reach the server in time, and a message whose ack silently went nowhere comes
back while the case still watches. Each case takes about 5 to 20 seconds against a local server.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cloudqueue

from ._base import SuiteBase, collect
from ._harness import Destination, Harness

__all__ = ["ConnectionFaults"]

_log = logging.getLogger("cloudqueue")


class _AckFailures(logging.Handler):
    """Counts the acks consumers reported failed, from the consumer's warning
    ``"%d of %d %s settlements on %s failed ..."`` (its arguments, not its text)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:  # called under self.lock
        args = record.args
        if (
            isinstance(args, tuple) and len(args) >= 3 and args[2] == "ack"
            and isinstance(args[0], int) and "settlements" in str(record.msg)
        ):
            self.count += args[0]


class _Record:
    """What a case saw, by body, shared between its threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Bodies that send reported sent.
        self.sent: set[str] = set()
        #: Bodies whose send raised: they may or may not have been delivered.
        self.unsure: set[str] = set()
        self.received: collections.Counter[str] = collections.Counter()
        #: Ids of messages whose ack() returned without raising. (Ids, not bodies: a
        #: body sent twice is two messages, and the second is no acked one coming back.)
        self.acked: set[str] = set()
        #: Ids of acked messages received again afterwards.
        self.returned: set[str] = set()
        #: When send calls and non-empty receive calls returned (time.monotonic()).
        self.sends_ok: list[float] = []
        self.receives_ok: list[float] = []
        #: QueueErrors raised by the API (allowed during a cut; reported in failures).
        self.errors: list[cloudqueue.QueueError] = []
        #: Anything else raised: always a failure.
        self.foreign: list[BaseException] = []

    def take(self, messages: list[cloudqueue.ReceivedMessage]) -> None:
        """Count received messages and ack them."""
        if messages:
            with self.lock:
                self.receives_ok.append(time.monotonic())
        for message in messages:
            body, message_id = message.text(), message.id
            with self.lock:
                if message_id in self.acked:
                    self.returned.add(message_id)
                self.received[body] += 1
            try:
                message.ack()
            except cloudqueue.QueueError as error:  # e.g. LeaseLost: not acked, may come back
                with self.lock:
                    self.errors.append(error)
                continue
            with self.lock:
                self.acked.add(message_id)

    def first_after(self, times: list[float], moment: float) -> float | None:
        with self.lock:
            return next((t for t in times if t >= moment), None)

    def count_after(self, times: list[float], moment: float) -> int:
        with self.lock:
            return sum(1 for t in times if t >= moment)

    def summary(self) -> str:
        with self.lock:
            duplicates = sum(1 for n in self.received.values() if n > 1)
            kinds = collections.Counter(type(error).__name__ for error in self.errors)
            return (
                f"sent {len(self.sent)}, unsure {len(self.unsure)}, received "
                f"{len(self.received)} distinct ({duplicates} more than once), acked "
                f"{len(self.acked)}, acked then received again {len(self.returned)}; "
                f"errors raised: {dict(kinds) or 'none'}"
                + (f" (first: {self.errors[0]})" if self.errors else "")
            )


def _produce(url: str, record: _Record, stop: threading.Event, prefix: str) -> None:
    """Send batches of 5 numbered bodies until ``stop``, recording what was reported sent."""
    with cloudqueue.open_producer(url) as producer:
        index = 0
        while not stop.is_set():
            bodies = [f"{prefix}-{index + n}" for n in range(5)]
            index += len(bodies)
            try:
                producer.send_batch([cloudqueue.Message(body) for body in bodies])
            except cloudqueue.SendBatchError as error:
                with record.lock:
                    for body, sent_id in zip(bodies, error.sent_ids, strict=True):
                        (record.sent if sent_id is not None else record.unsure).add(body)
                    record.errors.append(error)
            except cloudqueue.QueueError as error:
                with record.lock:
                    record.unsure.update(bodies)
                    record.errors.append(error)
            else:
                with record.lock:
                    record.sent.update(bodies)
                    record.sends_ok.append(time.monotonic())
            time.sleep(0.02)


def _consume(
    consumer: cloudqueue.Consumer, record: _Record, stop: threading.Event, pace: float
) -> None:
    """Receive (10 at a time) and ack until ``stop``."""
    while not stop.is_set():
        try:
            batch = consumer.receive(max_messages=10, wait=0.5)
        except cloudqueue.QueueError as error:
            with record.lock:
                record.errors.append(error)
            time.sleep(0.1)
            continue
        record.take(batch)
        if batch:
            time.sleep(pace)


class _Thread(threading.Thread):
    """A worker thread whose unexpected exception is recorded, not lost."""

    def __init__(self, record: _Record, target: Callable[..., None], *args: Any) -> None:
        super().__init__(daemon=True, name=f"cloudqueue faults {target.__name__}")
        self._record, self._work, self._args = record, target, args

    def run(self) -> None:
        try:
            self._work(*self._args)
        except BaseException as error:  # reported to the test thread
            with self._record.lock:
                self._record.foreign.append(error)

    def finish(self, stop: threading.Event, timeout: float = 90.0) -> None:
        stop.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not stop within {timeout:.0f}s"


def _wait_for(check: Callable[[], object], timeout: float, what: str, record: _Record) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if record.foreign:
            raise AssertionError(f"a worker failed while waiting for {what}") from record.foreign[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {record.summary()}")
        time.sleep(0.05)


class ConnectionFaults(SuiteBase):
    """Every connection cut for a few seconds: nothing reported sent is lost, no
    successfully acked message comes back, producers and consumers recover by
    themselves within :attr:`recovery_bound` seconds of the connections' return.

    Needs a harness that can cut connections (:attr:`Harness.fault_proxy`)."""

    #: How long each cut lasts.
    cut_seconds: float = 3.0
    #: Longest time from the end of a cut to the first successful call after it.
    recovery_bound: float = 15.0
    #: Lease of the destinations the cases make (seconds); see the module docstring.
    fault_lease: float = 12.0

    @pytest.fixture
    def ack_failures(self) -> Iterator[_AckFailures]:
        counter = _AckFailures()
        level = _log.level
        _log.addHandler(counter)
        if _log.getEffectiveLevel() > logging.WARNING:
            _log.setLevel(logging.WARNING)
        try:
            yield counter
        finally:
            _log.removeHandler(counter)
            _log.setLevel(level)

    def _destination(self, harness: Harness, make: object) -> Destination:
        if harness.fault_proxy is None and type(harness).cut_connections is Harness.cut_connections:
            harness.cut_connections()  # raises, saying what the harness lacks
        dest: Destination = make(lease=max(self.fault_lease, harness.short_lease))  # type: ignore[operator]
        return dest

    def _cut(self, harness: Harness) -> float:
        """Cut every connection for :attr:`cut_seconds`; returns when they were restored."""
        before = harness.fault_proxy.stats() if harness.fault_proxy is not None else None
        harness.cut_connections()
        try:
            time.sleep(self.cut_seconds)
        finally:
            harness.restore_connections()
        restored_at = time.monotonic()
        if harness.fault_proxy is not None and before is not None:
            after = harness.fault_proxy.stats()
            hit = (after.connections_cut - before.connections_cut) + (
                after.connections_refused - before.connections_refused
            )
            assert hit > 0, f"the cut met no connection: are the clients using the proxy? {after}"
        return restored_at

    def _recovered(self, record: _Record, times: list[float], restored_at: float, who: str) -> None:
        first = record.first_after(times, restored_at)
        assert first is not None, f"the {who} never succeeded after the cut: {record.summary()}"
        took = first - restored_at
        print(f"{who} succeeded {took:.2f}s after the connections came back")  # shown with -rP
        assert took <= self.recovery_bound, (
            f"the {who} took {took:.1f}s after the connections came back to succeed again "
            f"(bound {self.recovery_bound:g}s): {record.summary()}"
        )

    @staticmethod
    def _nothing_lost(record: _Record) -> None:
        print(record.summary())
        assert not record.foreign, f"not a QueueError: {record.foreign[0]!r}"
        with record.lock:
            lost = record.sent - set(record.received)
            strangers = set(record.received) - record.sent - record.unsure
        assert not lost, (
            f"{len(lost)} messages reported sent were never received "
            f"(e.g. {sorted(lost)[:5]}): {record.summary()}"
        )
        assert not strangers, f"received bodies nobody sent: {sorted(strangers)[:5]}"

    @staticmethod
    def _no_acked_message_back(record: _Record, failures: _AckFailures) -> None:
        print(f"acks reported failed: {failures.count}")
        assert len(record.returned) <= failures.count, (
            f"{len(record.returned)} acked messages came back (e.g. {sorted(record.returned)[:5]}) "
            f"but only {failures.count} acks were reported failed: {record.summary()}"
        )

    def _drain(self, url: str, record: _Record, harness: Harness) -> None:
        """Receive (and ack) until every body reported sent has come, or a deadline."""
        deadline = time.monotonic() + self.wait_budget(harness, 10.0)
        with cloudqueue.open_consumer(url) as consumer:
            while time.monotonic() < deadline:
                with record.lock:
                    if record.sent <= set(record.received):
                        break
                record.take(consumer.receive(max_messages=100, wait=1.0))

    # -- the cases -------------------------------------------------------------

    def test_cut_mid_send_loses_no_message_reported_sent(
        self, harness: Harness, make: object, ack_failures: _AckFailures
    ) -> None:
        """(a) A producer sends batches in a loop; every connection is cut under it."""
        dest = self._destination(harness, make)
        record, stop = _Record(), threading.Event()
        producer = _Thread(record, _produce, dest.producer_url, record, stop, "sent")
        producer.start()
        try:
            _wait_for(lambda: len(record.sends_ok) >= 10, 30, "sends before the cut", record)
            restored_at = self._cut(harness)
            _wait_for(
                lambda: record.count_after(record.sends_ok, restored_at) >= 10,
                self.recovery_bound + 30, "the producer to go on after the cut", record,
            )
        finally:
            producer.finish(stop)
        self._recovered(record, record.sends_ok, restored_at, "producer")
        self._drain(dest.consumer_url, record, harness)
        self._nothing_lost(record)
        self._no_acked_message_back(record, ack_failures)

    def test_cut_mid_receive_loses_nothing_and_the_consumer_recovers(
        self, harness: Harness, make: object, ack_failures: _AckFailures
    ) -> None:
        """(b) A consumer receives and acks in a loop; every connection is cut under it."""
        dest = self._destination(harness, make)
        record, stop = _Record(), threading.Event()
        bodies = [f"waiting-{index}" for index in range(200)]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(body) for body in bodies])
        record.sent.update(bodies)
        # max_in_flight equal to the receive size: nothing stays prefetched between
        # receives, so a receive after the cut returns what it fetched after it.
        with cloudqueue.open_consumer(dest.consumer_url, max_in_flight=10) as consumer:
            worker = _Thread(record, _consume, consumer, record, stop, 0.1)
            worker.start()
            try:
                _wait_for(lambda: len(record.received) >= 30, 30, "receives before the cut", record)
                restored_at = self._cut(harness)
                _wait_for(
                    lambda: record.sent <= set(record.received),
                    self.recovery_bound + self.wait_budget(harness, 10.0),
                    "every message after the cut", record,
                )
            finally:
                worker.finish(stop)
        self._recovered(record, record.receives_ok, restored_at, "consumer")
        self._nothing_lost(record)
        self._no_acked_message_back(record, ack_failures)

    def test_cut_with_acks_pending_brings_back_only_failed_acks(
        self, harness: Harness, make: object, ack_failures: _AckFailures
    ) -> None:
        """(c) Messages received and acked; every connection is cut before the acks
        are sent. The consumer keeps receiving past the messages' lease: an acked
        message may come back only if the consumer reported its ack failed."""
        dest = self._destination(harness, make)
        record = _Record()
        first = [f"acked-{index}" for index in range(30)]
        later = [f"later-{index}" for index in range(10)]
        settle_delay = 1.0  # acks wait this long for company: the cut comes first
        with cloudqueue.open_producer(dest.producer_url) as producer, cloudqueue.open_consumer(
            dest.consumer_url, settle_delay=settle_delay
        ) as consumer:
            producer.send_batch([cloudqueue.Message(body) for body in first])
            record.sent.update(first)
            got = collect(consumer, len(first), timeout=30, ack=False)
            assert sorted(message.text() for message in got) == sorted(first), record.summary()
            acked_at = time.monotonic()
            record.take(got)
            assert time.monotonic() - acked_at < settle_delay / 2, "acking took too long to test"
            restored_at = self._cut(harness)

            # The same producer and consumer go on, without being reopened.
            try:
                producer.send_batch([cloudqueue.Message(body) for body in later])
            except cloudqueue.QueueError as error:
                record.errors.append(error)
                record.unsure.update(later)
            else:
                record.sent.update(later)
                record.sends_ok.append(time.monotonic())
            # Watch until every acked message whose ack went nowhere would be back.
            watch_until = acked_at + dest.lease + harness.timer_slack * 2 + 3.0
            while time.monotonic() < watch_until or not record.sent <= set(record.received):
                assert time.monotonic() < watch_until + 30, f"later messages missing: {record.summary()}"
                try:
                    record.take(consumer.receive(max_messages=50, wait=0.5))
                except cloudqueue.QueueError as error:
                    record.errors.append(error)
        # close() has flushed every settlement: every failed ack has been reported.
        self._recovered(record, record.sends_ok, restored_at, "producer")
        self._recovered(record, record.receives_ok, restored_at, "consumer")
        self._nothing_lost(record)
        self._no_acked_message_back(record, ack_failures)
