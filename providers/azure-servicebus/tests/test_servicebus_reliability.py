"""Cutting every connection between the SDK and the broker loses nothing (issue 11, item 1).

A loopback TCP proxy (:mod:`cloudqueue.testing.faultproxy`) stands between the official
SDK and the local broker; the URL's connection string points at the proxy. While a
producer sends, while a consumer receives, and while settlements are pending, the proxy
resets every connection and refuses new ones for a few seconds. Counted by message body:

- every ``send_batch`` call succeeds (after the portable layer's retries) or raises a
  retryable error, and nothing reported as sent is lost;
- every message is eventually acked with success, and none comes back once acked;
- a settlement or lock renewal during the cut fails retryably and succeeds once the
  connection is back (without sessions a lock outlives its connection: nothing is
  delivered twice); on a session-enabled queue, where the session's lock goes with
  the connection, it fails as ``LeaseLost`` and the message comes back; never
  ``Unknown``;
- producer and consumer recover by themselves, without being reopened, within
  ``RECOVERY_BOUND`` seconds after the cut ends.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import cloudqueue
import pytest
from cloudqueue.driver import BatchErrors
from cloudqueue.errors import LeaseLost, QueueError
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.faultproxy import FaultProxy

from cloudqueue_azure_servicebus._receiving import ServiceBusSubscription
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

CUT_SECONDS = 3.0
#: Generous: recovery takes the portable layer's next retry (at most a few seconds of
#: backoff) plus opening a link (about half a second).
RECOVERY_BOUND = 15.0


@pytest.fixture
def proxy(broker: ServiceBusBroker) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", broker.port) as running:
        yield running


def _url(connection_string: str, broker: ServiceBusBroker, name: str) -> str:
    return (f"azuresb://local/{name}?connection_string={quote(connection_string, safe='')}"
            f"&admin_ca_file={quote(broker.certificate_path, safe='')}")


def direct_url(broker: ServiceBusBroker, name: str) -> str:
    return _url(broker.connection_string, broker, name)


def proxied_url(broker: ServiceBusBroker, proxy: FaultProxy, name: str) -> str:
    through_proxy = broker.connection_string.replace(f":{broker.port};", f":{proxy.port};")
    assert through_proxy != broker.connection_string
    return _url(through_proxy, broker, name)


def send_directly(broker: ServiceBusBroker, name: str, bodies: Sequence[str]) -> None:
    with cloudqueue.open_producer(direct_url(broker, name)) as producer:
        producer.send_batch([cloudqueue.Message(body) for body in bodies])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def _text(native: Any) -> str:
    body = native.body
    return (body if isinstance(body, bytes) else b"".join(body)).decode()


@dataclass
class Ledger:
    """What the consumer saw, by body: receipts, and the driver's answers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Bodies whose ack the driver reported done, with how often.
    acked: collections.Counter[str] = field(default_factory=collections.Counter)
    #: (body, error) for every ack the driver reported failed.
    ack_errors: list[tuple[str, QueueError]] = field(default_factory=list)
    #: (monotonic time, body, deadline or error) for every lock renewal.
    renewals: list[tuple[float, str, float | QueueError]] = field(default_factory=list)
    #: (monotonic time, body) of every receipt.
    received: list[tuple[float, str]] = field(default_factory=list)
    #: Bodies received again after an ack the driver reported done.
    back_after_ack: list[str] = field(default_factory=list)
    #: Errors the application saw that it should not have.
    problems: list[BaseException] = field(default_factory=list)

    def receipts_since(self, moment: float) -> list[str]:
        with self.lock:
            return [body for at, body in self.received if at > moment]

    def renewed_since(self, moment: float) -> set[str]:
        with self.lock:
            return {body for at, body, outcome in self.renewals
                    if at > moment and isinstance(outcome, float)}


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """Record, by body, what the Service Bus driver answers to every ack and renewal."""
    book = Ledger()
    real_ack, real_extend = ServiceBusSubscription.ack, ServiceBusSubscription.extend

    def ack(self: ServiceBusSubscription, tokens: Sequence[object]) -> BatchErrors:
        try:
            outcomes = real_ack(self, tokens)
        except QueueError as error:
            with book.lock:
                book.ack_errors.extend((_text(token), error) for token in tokens)
            raise
        with book.lock:
            for index, token in enumerate(tokens):
                outcome = None if outcomes is None else outcomes[index]
                if outcome is None:
                    book.acked[_text(token)] += 1
                else:
                    book.ack_errors.append((_text(token), outcome))
        return outcomes

    def extend(self: ServiceBusSubscription,
               entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        outcomes = real_extend(self, entries)
        with book.lock:
            now = time.monotonic()
            book.renewals.extend(
                (now, _text(token), outcome) for (token, _), outcome in zip(entries, outcomes, strict=True)
            )
        return outcomes

    monkeypatch.setattr(ServiceBusSubscription, "ack", ack)
    monkeypatch.setattr(ServiceBusSubscription, "extend", extend)
    return book


def consume(consumer: cloudqueue.Consumer, book: Ledger, stop: threading.Event,
            keep: Callable[[str], bool] = lambda body: False,
            kept: list[Any] | None = None) -> None:
    """Receive and ack until ``stop``; messages for which ``keep`` says so are held
    in ``kept`` instead of being acked."""
    while not stop.is_set():
        try:
            batch = consumer.receive(max_messages=20, wait=0.5)
        except QueueError as error:
            if not error.retryable:
                book.problems.append(error)
            continue
        for message in batch:
            body = message.text()
            with book.lock:
                if book.acked[body]:
                    book.back_after_ack.append(body)
                book.received.append((time.monotonic(), body))
            if kept is not None and keep(body):
                kept.append(message)
                continue
            ack_quietly(message, book)


def ack_quietly(message: Any, book: Ledger) -> None:
    try:
        message.ack()
    except LeaseLost:
        pass  # the consumer already knows the lease is gone: it will be delivered again
    except QueueError as error:
        book.problems.append(error)


def check_settlements(book: Ledger, bodies: set[str], lease: float, timeout: float, *,
                      exactly_once: bool) -> None:
    """Every body ends acked once; none came back after its ack; failed acks and
    renewals were LeaseLost or retryable (never Unknown); with ``exactly_once``, no
    body was delivered twice. Call while the consumer still receives."""
    wait_for(lambda: bodies <= set(book.acked), timeout, "every message to be acked with success")
    # An ack reported done that did not complete the message shows only when its
    # lock ends and it is delivered again: keep receiving until every lock has ended.
    with book.lock:
        locks_end = max(at for at, _ in book.received) + lease + 2.0
    time.sleep(max(0.0, locks_end - time.monotonic()))
    with book.lock:
        twice = {body: count for body, count in book.acked.items() if count > 1}
        failures = [(body, error) for body, error in book.ack_errors]
        failures += [(body, outcome) for _, body, outcome in book.renewals
                     if isinstance(outcome, QueueError)]
        wrong = [(body, error) for body, error in failures
                 if not (isinstance(error, LeaseLost) or error.retryable)]
        deliveries = collections.Counter(body for _, body in book.received)
    assert not book.problems, book.problems
    assert not wrong, f"settlements failed with neither LeaseLost nor a retryable error: {wrong[:3]}"
    assert not book.back_after_ack, f"acked, then delivered again: {sorted(book.back_after_ack)[:10]}"
    assert not twice, f"acked with success more than once: {twice}"
    if exactly_once:
        again = {body: count for body, count in deliveries.items() if count > 1}
        assert not again, f"delivered more than once although no lock ended: {again}"


# -- (a) a producer sending in a loop ----------------------------------------------------


def test_a_producer_sending_through_a_cut_loses_nothing_and_recovers(
    broker: ServiceBusBroker, proxy: FaultProxy
) -> None:
    name = unique_name("cutsend")
    cloudqueue.declare(direct_url(broker, name), lease=30)
    sent: set[str] = set()
    failures: list[QueueError] = []
    unexpected: list[BaseException] = []
    finished_at: list[tuple[float, float]] = []  # (started, finished) of each successful call
    batches_done = threading.Semaphore(0)

    def produce(producer: cloudqueue.Producer) -> None:
        for index in range(30):
            bodies = [f"b{index}-m{n}" for n in range(5)]
            started = time.monotonic()
            try:
                ids = producer.send_batch([cloudqueue.Message(body) for body in bodies])
            except QueueError as error:
                failures.append(error)  # may or may not have been delivered
            except BaseException as error:
                unexpected.append(error)
                return
            else:
                assert len(ids) == len(bodies)
                sent.update(bodies)
                finished_at.append((started, time.monotonic()))
            batches_done.release()
            time.sleep(0.1)

    with cloudqueue.open_producer(proxied_url(broker, proxy, name)) as producer:
        producer.send(b"warm-up")  # the sender's link is open before the cut
        sending = threading.Thread(target=produce, args=(producer,))
        sending.start()
        for _ in range(5):
            assert batches_done.acquire(timeout=30), "the producer did not get going"
        before = proxy.stats()
        proxy.cut(CUT_SECONDS)
        cut_ends = time.monotonic() + CUT_SECONDS
        sending.join(120)
        assert not sending.is_alive(), "the producer hung"

    assert not unexpected, unexpected
    non_retryable = [error for error in failures if not error.retryable]
    assert not non_retryable, f"{len(non_retryable)} batches failed for good: {non_retryable[:3]}"
    stats = proxy.stats()
    assert stats.connections_cut > before.connections_cut, stats  # the cut hit a live connection
    assert stats.connections_accepted > before.connections_accepted, stats  # it reconnected
    recovered = min((done for _, done in finished_at if done > cut_ends), default=None)
    assert recovered is not None, "no batch was sent after the cut"
    assert recovered - cut_ends < RECOVERY_BOUND
    assert any(started < cut_ends < done for started, done in finished_at) or len(failures), (
        "no send ran into the cut")

    # Everything reported as sent arrives (duplicates allowed), read without the proxy.
    received: set[str] = set()
    with cloudqueue.open_consumer(direct_url(broker, name)) as consumer:
        deadline = time.monotonic() + 60
        while not sent <= received and time.monotonic() < deadline:
            for message in consumer.receive(max_messages=100, wait=1.0):
                received.add(message.text())
                message.ack()
    assert sent - received == set(), f"lost: {sorted(sent - received)[:10]}"
    assert len(sent) >= 5 * (30 - len(failures))


# -- (b) a consumer receiving during the cut ---------------------------------------------


def test_a_consumer_receiving_through_a_cut_recovers_and_keeps_its_locks(
    broker: ServiceBusBroker, proxy: FaultProxy, ledger: Ledger
) -> None:
    name = unique_name("cutrecv")
    lease = 10.0
    cloudqueue.declare(direct_url(broker, name), lease=lease)
    before_cut = [f"before-{n}" for n in range(30)]
    send_directly(broker, name, before_cut)
    stop = threading.Event()
    kept: list[Any] = []  # being worked on across the cut, acked after it
    to_keep = {"before-0", "before-1", "before-2"}

    def keep(body: str) -> bool:  # on first receipt only: held across the cut
        if body in to_keep:
            to_keep.discard(body)
            return True
        return False

    with cloudqueue.open_consumer(proxied_url(broker, proxy, name)) as consumer:
        receiving = threading.Thread(target=consume, args=(consumer, ledger, stop, keep, kept))
        receiving.start()
        try:
            wait_for(lambda: set(before_cut) <= {b for _, b in ledger.received}, 30,
                     "the messages sent before the cut")
            wait_for(lambda: set(ledger.acked) >= set(before_cut[3:]), 30, "their acks")
            time.sleep(0.5)  # the consumer is now waiting in receive()
            proxy.cut(CUT_SECONDS)
            time.sleep(CUT_SECONDS)
            cut_ended = time.monotonic()
            after_cut = [f"after-{n}" for n in range(30)]
            send_directly(broker, name, after_cut)
            wait_for(lambda: any(b.startswith("after-") for b in ledger.receipts_since(cut_ended)),
                     RECOVERY_BOUND + 10, "the consumer to receive again")
            recovered = min(at for at, b in ledger.received if b.startswith("after-"))
            assert recovered - cut_ended < RECOVERY_BOUND
            # The consumer keeps the locks of the work held across the cut: it renews
            # them on the new connection, and then acks them.
            wait_for(lambda: {m.text() for m in kept} <= ledger.renewed_since(cut_ended), 2 * lease,
                     "the locks held across the cut to be renewed after it")
            assert len(kept) == 3
            for message in kept:
                ack_quietly(message, ledger)
            check_settlements(ledger, set(before_cut) | set(after_cut), lease, timeout=60,
                              exactly_once=True)
        finally:
            stop.set()
            receiving.join(30)
    assert proxy.stats().connections_cut >= 1


# -- (c) settlements pending when the cut comes ------------------------------------------


def _hold_then_cut_then_ack(consumer: cloudqueue.Consumer, proxy: FaultProxy, book: Ledger,
                            count: int) -> float:
    """Receive ``count`` messages, cut, ack them while the connection is down, and
    wait (receiving nothing meanwhile) until every one of those acks has its final
    answer: done, or failed for good. Returns when the cut ends."""
    held: list[Any] = []
    deadline = time.monotonic() + 30
    while len(held) < count and time.monotonic() < deadline:
        held.extend(consumer.receive(max_messages=count - len(held), wait=1.0))
    assert len(held) == count
    bodies = {message.text() for message in held}
    with book.lock:
        book.received.extend((time.monotonic(), body) for body in bodies)
    proxy.cut(CUT_SECONDS)
    cut_ends = time.monotonic() + CUT_SECONDS
    for message in held:  # settled in the background, while the connection is down
        ack_quietly(message, book)

    def answered() -> bool:
        with book.lock:
            final = {body for body, error in book.ack_errors if not error.retryable}
            return bodies <= final | set(book.acked)

    wait_for(answered, CUT_SECONDS + RECOVERY_BOUND + 10, "the held messages' acks to be answered")
    return cut_ends


def test_settlements_pending_at_a_cut_are_retried_and_nothing_acked_comes_back(
    broker: ServiceBusBroker, proxy: FaultProxy, ledger: Ledger
) -> None:
    name = unique_name("cutsettle")
    lease = 15.0
    cloudqueue.declare(direct_url(broker, name), lease=lease)
    bodies = [f"m{n}" for n in range(40)]
    send_directly(broker, name, bodies)
    stop = threading.Event()

    with cloudqueue.open_consumer(proxied_url(broker, proxy, name)) as consumer:
        cut_ended = _hold_then_cut_then_ack(consumer, proxy, ledger, 20)
        receiving = threading.Thread(target=consume, args=(consumer, ledger, stop))
        receiving.start()
        try:
            wait_for(lambda: bool(ledger.receipts_since(cut_ended)), RECOVERY_BOUND + 10,
                     "the consumer to receive again")
            recovered = min(at for at, _ in ledger.received if at > cut_ended)
            assert recovered - cut_ended < RECOVERY_BOUND
            # The held messages' locks outlive the connection: their acks succeed late.
            check_settlements(ledger, set(bodies), lease, timeout=60, exactly_once=True)
        finally:
            stop.set()
            receiving.join(30)

    assert ledger.ack_errors, "no pending ack ran into the cut"
    assert all(error.retryable for _, error in ledger.ack_errors), ledger.ack_errors[:3]


def test_session_settlements_pending_at_a_cut_fail_as_lease_lost_and_nothing_is_lost(
    broker: ServiceBusBroker, proxy: FaultProxy, ledger: Ledger
) -> None:
    name = unique_name("cutsession")
    lease = 10.0
    cloudqueue.declare(direct_url(broker, name), lease=lease, ordered=True)
    bodies = [f"k{key}-m{n}" for key in range(4) for n in range(5)]
    with cloudqueue.open_producer(direct_url(broker, name)) as producer:
        producer.send_batch([cloudqueue.Message(body, ordering_key=body.split("-")[0]) for body in bodies])
    stop = threading.Event()

    with cloudqueue.open_consumer(proxied_url(broker, proxy, name)) as consumer:
        # A session's messages are handed out one at a time: hold its first one.
        cut_ended = _hold_then_cut_then_ack(consumer, proxy, ledger, 1)
        receiving = threading.Thread(target=consume, args=(consumer, ledger, stop))
        receiving.start()
        try:
            wait_for(lambda: bool(ledger.receipts_since(cut_ended)), RECOVERY_BOUND + 10,
                     "the consumer to receive again")
            recovered = min(at for at, _ in ledger.received if at > cut_ended)
            assert recovered - cut_ended < RECOVERY_BOUND
            check_settlements(ledger, set(bodies), lease, timeout=60, exactly_once=False)
        finally:
            stop.set()
            receiving.join(30)

    # The session's lock went with the connection: those acks were LeaseLost.
    lost = [error for _, error in ledger.ack_errors if isinstance(error, LeaseLost)]
    assert lost, f"no pending ack ran into the cut as LeaseLost: {ledger.ack_errors[:3]}"
