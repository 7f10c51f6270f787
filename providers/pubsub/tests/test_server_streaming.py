"""StreamingPull: the high-level subscribe() and raw streams (flow control, stream acks)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SubscriptionFactory, publish_all, pull_now
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.types import StreamingPullRequest

from cloudqueue_pubsub.testing import PubSubServer

_END = object()


class RawStream:
    """A StreamingPull call driven request by request, its responses read on a thread."""

    def __init__(self, subscriber: pubsub_v1.SubscriberClient, first: StreamingPullRequest):
        self._requests: queue.Queue[Any] = queue.Queue()
        self._requests.put(first)
        self.responses: queue.Queue[Any] = queue.Queue()
        self._call = subscriber.streaming_pull(requests=self._request_iterator())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _request_iterator(self) -> Iterator[StreamingPullRequest]:
        while True:
            request = self._requests.get()
            if request is _END:
                return
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self.responses.put(response)
        except Exception as error:  # handed to the test thread
            self.responses.put(error)
        self.responses.put(_END)

    def send(self, **fields: Any) -> None:
        self._requests.put(StreamingPullRequest(**fields))

    def messages(self, count: int, timeout: float = 5.0) -> list[Any]:
        received: list[Any] = []
        give_up_at = time.monotonic() + timeout
        while len(received) < count:
            item = self.responses.get(timeout=max(0.01, give_up_at - time.monotonic()))
            if isinstance(item, Exception):
                raise item
            assert item is not _END, "stream ended early"
            received.extend(item.received_messages)
        return received

    def assert_quiet(self, seconds: float) -> None:
        with pytest.raises(queue.Empty):
            item = self.responses.get(timeout=seconds)
            raise AssertionError(f"unexpected response: {item!r}")

    def close(self) -> None:
        self._requests.put(_END)
        self._call.cancel()
        self._reader.join(timeout=5)


def open_stream(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, **fields: Any
) -> RawStream:
    fields.setdefault("stream_ack_deadline_seconds", 10)
    return RawStream(subscriber, StreamingPullRequest(subscription=subscription, **fields))


def test_subscribe_receives_and_acks_everything(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    expected = {str(i).encode() for i in range(300)}
    received: set[bytes] = set()
    lock = threading.Lock()
    done = threading.Event()

    def callback(message: Any) -> None:
        with lock:
            received.add(message.data)
            if len(received) == len(expected):
                done.set()
        message.ack()

    future = subscriber.subscribe(subscription, callback)
    try:
        publish_all(publisher, topic, *expected)
        assert done.wait(timeout=15), f"received {len(received)} of {len(expected)}"
    finally:
        future.cancel()
        future.result(timeout=10)
    assert received == expected
    deadline = time.monotonic() + 5
    while server.broker.backlog(subscription) and time.monotonic() < deadline:
        time.sleep(0.05)  # acks travel asynchronously from the client's dispatcher
    assert server.broker.backlog(subscription) == 0
    assert server.request_counts()["StreamingPull"] >= 1


def test_subscribe_nack_redelivers(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    deliveries: list[str] = []
    done = threading.Event()

    def callback(message: Any) -> None:
        deliveries.append(message.message_id)
        if len(deliveries) == 1:
            message.nack()
        else:
            message.ack()
            done.set()

    future = subscriber.subscribe(subscription, callback)
    try:
        publish_all(publisher, topic, b"retry me")
        assert done.wait(timeout=10)
    finally:
        future.cancel()
        future.result(timeout=10)
    assert len(deliveries) == 2 and deliveries[0] == deliveries[1]


def test_stream_flow_control_and_acks_on_the_stream(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    stream = open_stream(subscriber, subscription, max_outstanding_messages=3)
    try:
        publish_all(publisher, topic, *(str(i).encode() for i in range(10)))
        first = stream.messages(3)
        assert [m.message.data for m in first] == [b"0", b"1", b"2"]
        stream.assert_quiet(0.3)  # the client's window is full

        stream.send(ack_ids=[first[0].ack_id, first[1].ack_id])
        second = stream.messages(2)
        assert [m.message.data for m in second] == [b"3", b"4"]
        stream.assert_quiet(0.3)

        # A nack on the stream frees room and puts the message back first in line.
        stream.send(modify_deadline_ack_ids=[first[2].ack_id], modify_deadline_seconds=[0])
        [again] = stream.messages(1)
        assert again.message.data == b"2"

        # Raising the window lets the rest flow.
        stream.send(max_outstanding_messages=100)
        rest = stream.messages(5)
        assert [m.message.data for m in rest] == [b"5", b"6", b"7", b"8", b"9"]
    finally:
        stream.close()


def test_stream_byte_flow_control(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    stream = open_stream(subscriber, subscription, max_outstanding_bytes=2500)
    try:
        publish_all(publisher, topic, *(bytes([65 + i]) * 1000 for i in range(4)))
        first = stream.messages(2)
        stream.assert_quiet(0.3)
        stream.send(ack_ids=[m.ack_id for m in first])
        assert len(stream.messages(2)) == 2
    finally:
        stream.close()


def test_stream_extension_keeps_the_lease(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    stream = open_stream(subscriber, subscription)
    try:
        publish_all(publisher, topic, b"x")
        [message] = stream.messages(1)
        stream.send(modify_deadline_ack_ids=[message.ack_id], modify_deadline_seconds=[1])
        [again] = stream.messages(1, timeout=5)  # expired after about a second
        assert again.message.message_id == message.message.message_id
        stream.send(modify_deadline_ack_ids=[again.ack_id], modify_deadline_seconds=[60])
        stream.assert_quiet(1.5)
        stream.send(ack_ids=[again.ack_id])
    finally:
        stream.close()
    assert pull_now(subscriber, subscription) == []


def test_invalid_stream_ack_deadline_is_refused(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    stream = open_stream(subscriber, make_subscription(), stream_ack_deadline_seconds=5)
    try:
        with pytest.raises(exceptions.InvalidArgument):
            stream.messages(1)
    finally:
        stream.close()


def test_invalid_deadline_on_the_stream_ends_it(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    stream = open_stream(subscriber, make_subscription())
    try:
        publish_all(publisher, topic, b"x")
        [message] = stream.messages(1)
        stream.send(modify_deadline_ack_ids=[message.ack_id], modify_deadline_seconds=[601])
        with pytest.raises(exceptions.InvalidArgument):
            stream.messages(1)
    finally:
        stream.close()


def test_stream_on_a_missing_subscription_is_not_found(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    stream = open_stream(subscriber, make_subscription() + "-missing")
    try:
        with pytest.raises(exceptions.NotFound):
            stream.messages(1)
    finally:
        stream.close()


def test_deleting_the_subscription_ends_streams_with_not_found(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    stream = open_stream(subscriber, subscription)
    try:
        publish_all(publisher, topic, b"before")
        stream.messages(1)
        subscriber.delete_subscription(subscription=subscription)
        with pytest.raises(exceptions.NotFound):
            stream.messages(1)
    finally:
        stream.close()


def test_subscribe_future_fails_when_the_subscription_is_deleted(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    started = threading.Event()

    def callback(message: Any) -> None:
        message.ack()
        started.set()

    future = subscriber.subscribe(subscription, callback)
    publish_all(publisher, topic, b"x")
    assert started.wait(timeout=10)
    subscriber.delete_subscription(subscription=subscription)
    with pytest.raises(exceptions.NotFound):
        future.result(timeout=10)


def test_stopping_the_server_ends_streams_with_unavailable(
    server: PubSubServer,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
) -> None:
    stream = open_stream(subscriber, make_subscription())
    try:
        stream.assert_quiet(0.2)  # the stream is open and idle
        server.stop()
        with pytest.raises(exceptions.ServiceUnavailable):
            stream.messages(1)
    finally:
        stream.close()
