"""Issue 18's reliability cases on a real broker, through the portable API (aio-pika underneath):
a stream of sends and receives is disrupted in the middle, by a connection cut (the project's
FaultProxy) or by a broker restart (the broker process stopped and started again, durable
quorum queue), and every message that ``send`` reported as sent is received afterwards, by the
same producer and consumer objects, which recover by themselves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cloudqueue
import pytest
from cloudqueue.testing.faultproxy import FaultProxy

from cloudqueue_rabbitmq.testing import RabbitMqServer

#: Received before the disruption starts; sent after it is over.
_BEFORE = 40
_AFTER = 40
#: Safety cap on the sends of the first phase.
_MAX_BEFORE = 20_000
#: Upper bound for the whole stream, so that a broken recovery fails instead of hanging; the
#: assertions never depend on how fast anything is.
_DEADLINE = 120.0


@dataclass
class _Stream:
    """What one producer thread and one consumer thread saw."""

    sent: list[bytes] = field(default_factory=list)  # send() returned: the broker confirmed
    send_errors: list[BaseException] = field(default_factory=list)
    received: set[bytes] = field(default_factory=set)
    receive_errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    disrupted: threading.Event = field(default_factory=threading.Event)
    producer_done: threading.Event = field(default_factory=threading.Event)

    def sent_after_disruption(self) -> list[bytes]:
        return [body for body in self.sent if body.startswith(b"after-")]


def _produce(url: str, stream: _Stream) -> None:
    """Send until the disruption is over (so that sends are under way while it happens), then
    :data:`_AFTER` more."""

    def send(body: bytes) -> None:
        try:
            producer.send(body)
        except cloudqueue.QueueError as error:  # not reported sent: allowed to be lost
            stream.send_errors.append(error)
        else:
            with stream.lock:
                stream.sent.append(body)

    with cloudqueue.open_producer(url) as producer:
        index = 0
        while not stream.disrupted.is_set() and index < _MAX_BEFORE:
            send(b"before-%d" % index)
            index += 1
            time.sleep(0.005)  # a steady stream, not a flood the consumer trails far behind
        for index in range(_AFTER):
            send(b"after-%d" % index)
    stream.producer_done.set()


def _consume(url: str, stream: _Stream, deadline: float) -> None:
    with cloudqueue.open_consumer(url) as consumer:
        while time.monotonic() < deadline:
            try:
                for message in consumer.receive(max_messages=10, wait=1.0):
                    message.ack()
                    with stream.lock:
                        stream.received.add(message.body)
            except cloudqueue.QueueError as error:
                stream.receive_errors.append(error)
            with stream.lock:
                complete = stream.producer_done.is_set() and set(stream.sent) <= stream.received
            if complete:
                return


def _run_disrupted_stream(
    producer_url: str, consumer_url: str, disrupt: Callable[[], None]
) -> _Stream:
    stream = _Stream()
    deadline = time.monotonic() + _DEADLINE
    producer = threading.Thread(target=_produce, args=(producer_url, stream))
    consumer = threading.Thread(target=_consume, args=(consumer_url, stream, deadline))
    producer.start()
    consumer.start()
    try:
        # Mid-stream: after some messages went through both ways.
        while time.monotonic() < deadline:
            with stream.lock:
                if len(stream.received) >= _BEFORE // 2:
                    break
            time.sleep(0.05)
        disrupt()
    finally:
        stream.disrupted.set()
        producer.join(_DEADLINE)
        consumer.join(_DEADLINE)
    return stream


def _assert_nothing_reported_sent_was_lost(stream: _Stream) -> None:
    lost = [body for body in stream.sent if body not in stream.received]
    assert lost == [], (
        f"{len(lost)} of {len(stream.sent)} messages reported sent never arrived: {lost[:10]}; "
        f"send errors {stream.send_errors[:3]}, receive errors {stream.receive_errors[:3]}"
    )
    # Recovery by themselves: the same producer and consumer objects worked after the disruption.
    assert stream.sent_after_disruption(), f"no send succeeded after the disruption: {stream.send_errors[:3]}"
    assert any(body.startswith(b"after-") for body in stream.received)


@pytest.fixture
def proxied(rabbitmq_server: RabbitMqServer) -> Iterator[tuple[FaultProxy, str]]:
    """A FaultProxy in front of the session's broker and the base URL through it."""
    with FaultProxy(rabbitmq_server.host, rabbitmq_server.port) as proxy:
        user, password = rabbitmq_server.user, rabbitmq_server.password
        yield proxy, f"amqp://{user}:{password}@127.0.0.1:{proxy.port}/"


def test_connection_cut_mid_stream_loses_nothing_reported_sent(
    proxied: tuple[FaultProxy, str], queue_name: str
) -> None:
    proxy, base_url = proxied
    url = f"{base_url}?queue={queue_name}"
    cloudqueue.declare(url)
    try:
        before = proxy.stats()
        stream = _run_disrupted_stream(url, url, lambda: proxy.cut(2.0))

        after = proxy.stats()
        assert after.connections_cut > before.connections_cut, "the cut met no open connection"
        _assert_nothing_reported_sent_was_lost(stream)
    finally:
        cloudqueue.delete(url)


def test_broker_restart_mid_stream_loses_nothing_confirmed(
    private_rabbitmq_server: RabbitMqServer, queue_name: str
) -> None:
    server = private_rabbitmq_server
    url = f"{server.url}?queue={queue_name}"
    cloudqueue.declare(url)  # a quorum queue: durable, its messages persistent
    pid_before = server.pid

    stream = _run_disrupted_stream(url, url, server.restart)

    assert server.pid != pid_before  # the broker process really was replaced
    _assert_nothing_reported_sent_was_lost(stream)
