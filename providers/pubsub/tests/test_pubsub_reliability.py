"""Cutting every connection between the client and the server mid-run loses nothing.

A loopback TCP proxy stands between the official client and the local server. While a
producer and a consumer run, the proxy resets every connection and refuses new ones for a
few seconds. Every message ``send`` reported as sent must still be received, and both sides
must go on working after the cut without being reopened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.faultproxy import FaultProxy

from cloudqueue_pubsub.testing import PubSubServer

CUT_SECONDS = 3.0


@pytest.fixture
def server() -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=0.5) as running:
        yield running


def test_a_network_cut_loses_no_sent_message(
    server: PubSubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = unique_name("cut")
    url = f"pubsub://reliability/{topic}?subscription={topic}-worker"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
    cloudqueue.declare(url, lease=10)

    with FaultProxy(server.host, server.port) as proxy:
        # Drivers opened now talk through the proxy.
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{proxy.port}")
        sent: list[str] = []
        received: set[str] = set()
        lock = threading.Lock()
        producing = threading.Event()
        producing.set()
        cut_over = threading.Event()
        sent_after_cut = threading.Event()
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                with cloudqueue.open_producer(url) as producer:
                    index = 0
                    while producing.is_set():
                        ids = producer.send_batch(
                            [cloudqueue.Message(f"{index}-{n}") for n in range(5)]
                        )
                        with lock:
                            sent.extend(ids)
                        if cut_over.is_set():
                            sent_after_cut.set()
                        index += 1
                        time.sleep(0.01)
            except BaseException as error:  # reported to the test thread
                errors.append(error)

        def consume(stop: threading.Event) -> None:
            try:
                with cloudqueue.open_consumer(url, max_in_flight=200) as consumer:
                    while not stop.is_set():
                        for message in consumer.receive(max_messages=100, wait=0.5):
                            with lock:
                                received.add(message.id)
                            message.ack()
            except BaseException as error:
                errors.append(error)

        stop_consuming = threading.Event()
        threads = [
            threading.Thread(target=produce),
            threading.Thread(target=consume, args=(stop_consuming,)),
        ]
        for thread in threads:
            thread.start()
        _wait_for(lambda: len(received) >= 50, 20, "messages flowing before the cut")
        before = proxy.stats()
        proxy.cut(CUT_SECONDS)
        time.sleep(CUT_SECONDS)
        cut_over.set()
        assert sent_after_cut.wait(30), "the producer did not recover after the cut"
        count_after_cut = len(sent)
        _wait_for(lambda: len(sent) >= count_after_cut + 50, 20, "the producer to keep going")
        producing.clear()
        threads[0].join(30)
        with lock:
            expected = set(sent)
        _wait_for(lambda: expected <= received, 60, "every sent message to arrive")
        stop_consuming.set()
        threads[1].join(30)

        assert not errors, errors
        stats = proxy.stats()
        assert stats.connections_cut >= 1, stats  # the cut hit live connections
        # The clients connected again by themselves (nothing was reopened).
        assert stats.connections_accepted > before.connections_accepted, (before, stats)
        assert expected <= received


def _wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
