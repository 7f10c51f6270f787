"""A network failure mid-run loses nothing that was reported sent; secrets stay hidden."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.faultproxy import FaultProxy
from conftest_driver import aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]

_CUT_SECONDS = 3.0


@pytest.fixture
def proxy(endpoint_url: str) -> Iterator[FaultProxy]:
    target = urlsplit(endpoint_url)
    with FaultProxy("127.0.0.1", target.port or 80) as running:
        yield running


@pytest.fixture
def queue_url(proxy: FaultProxy, endpoint_url: str) -> Iterator[str]:
    def url(endpoint: str) -> str:
        return f"sqs://{name}?" + urlencode({"region": "us-east-1", "endpoint_url": endpoint})

    name = unique_name("cq-cut")
    cloudqueue.declare(url(endpoint_url), lease=5.0)
    yield url(f"http://127.0.0.1:{proxy.port}")
    cloudqueue.delete(url(endpoint_url))


def test_cutting_every_connection_mid_run_loses_no_sent_message(
    proxy: FaultProxy, queue_url: str, aws_environment: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sent: set[str] = set()
    received: set[str] = set()
    producing = threading.Event()
    producing.set()
    failures: list[BaseException] = []

    def produce() -> None:
        with cloudqueue.open_producer(queue_url) as producer:
            for index in range(400):
                try:
                    sent.add(producer.send(f"m{index}", attributes={"i": str(index)}))
                except cloudqueue.QueueError as error:  # reported unsent: allowed to be missing
                    failures.append(error)
                time.sleep(0.005)
        producing.clear()

    def consume() -> None:
        with cloudqueue.open_consumer(queue_url) as consumer:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if not producing.is_set() and sent <= received:
                    return
                for message in consumer.receive(max_messages=10, wait=1.0):
                    received.add(message.id)
                    message.ack()

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    # Cut once both sides have traffic under way.
    deadline = time.monotonic() + 30
    while len(received) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proxy.cut(_CUT_SECONDS)
    cut_at = time.monotonic()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    stats = proxy.stats()
    assert stats.connections_cut + stats.connections_refused > 0, "the cut hit no connection"
    assert failures == []  # the outage was shorter than the retry deadline
    assert len(sent) == 400
    assert sent - received == set(), f"{len(sent - received)} sent messages were lost"
    # Both sides kept working after the cut ended (recovered on their own).
    assert time.monotonic() - cut_at > _CUT_SECONDS
    everything_logged = "\n".join(record.getMessage() for record in caplog.records)
    assert aws_environment["AWS_SECRET_ACCESS_KEY"] not in everything_logged


def test_credentials_never_appear_in_errors_or_reprs(
    endpoint_url: str, aws_environment: dict[str, str]
) -> None:
    secret = aws_environment["AWS_SECRET_ACCESS_KEY"]
    url = f"sqs://{unique_name('cq-missing')}?" + urlencode(
        {"region": "us-east-1", "endpoint_url": endpoint_url}
    )
    with cloudqueue.open_producer(url) as producer:
        with pytest.raises(cloudqueue.NotFound) as info:
            producer.send(b"x")
        shown = [str(info.value), repr(info.value), repr(producer), str(producer.url)]
    # An SDK error whose text echoes the secret is scrubbed on the way out.
    echoed = cloudqueue.Unavailable(f"signature mismatch for key {secret}")
    shown.append(str(echoed))
    assert not any(secret in text for text in shown)
