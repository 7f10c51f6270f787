"""Lifecycle, errors and the escape hatch (cases 19-26)."""

from __future__ import annotations

import threading

import pytest

import cloudqueue

from ._base import SuiteBase, collect
from ._harness import Destination, Harness

__all__ = ["Lifecycle"]


class Lifecycle(SuiteBase):
    def test_send_after_close_fails_and_close_twice_is_harmless(self, dest: Destination) -> None:
        producer = cloudqueue.open_producer(dest.producer_url)
        producer.send(b"before")
        producer.close()
        producer.close()
        with pytest.raises(cloudqueue.Closed):
            producer.send(b"after")

    def test_receive_and_settle_after_close_fail_clearly(self, dest: Destination) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"x")
        consumer = cloudqueue.open_consumer(dest.consumer_url)
        (message,) = collect(consumer, 1, timeout=30, ack=False)
        consumer.close()
        consumer.close()
        with pytest.raises(cloudqueue.Closed):
            consumer.receive(max_messages=1, wait=0)
        with pytest.raises(cloudqueue.Closed):
            message.ack()

    def test_many_consumers_close_concurrently(self, dest: Destination) -> None:
        consumers = [cloudqueue.open_consumer(dest.consumer_url) for _ in range(8)]
        threads = [threading.Thread(target=consumer.close) for consumer in consumers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        for consumer in consumers:
            with pytest.raises(cloudqueue.Closed):
                consumer.receive(max_messages=1, wait=0)

    def test_parallel_sends_then_close_lose_nothing(self, dest: Destination) -> None:
        producer = cloudqueue.open_producer(dest.producer_url)
        ids: list[str] = []
        lock = threading.Lock()

        def send(worker: int) -> None:
            for index in range(15):
                message_id = producer.send(f"{worker}-{index}")
                with lock:
                    ids.append(message_id)

        threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        producer.close()
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, len(ids), timeout=60)
        assert sorted(m.id for m in got) == sorted(ids)
        assert len(ids) == 90

    def test_missing_destination_is_not_found(self, harness: Harness, dest: Destination) -> None:
        capabilities = cloudqueue.capabilities(dest.producer_url)
        if capabilities.implicit_create:
            return  # memory/SQLite create on first use; nothing can be missing
        url = harness.missing_url()
        with pytest.raises(cloudqueue.NotFound), cloudqueue.open_producer(url) as producer:
            producer.send(b"nowhere")
        with pytest.raises(cloudqueue.NotFound), cloudqueue.open_consumer(url) as consumer:
            consumer.receive(max_messages=1, wait=0.5)

    def test_escape_hatch_answers_for_native_types_only(self, dest: Destination) -> None:
        class Unrelated:
            pass

        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"native")
            assert producer.as_(Unrelated) is None
            native = producer.as_(object)
            assert native is not None
            assert producer.as_(type(native)) is native
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            assert consumer.as_(Unrelated) is None
            assert consumer.as_(object) is not None
            (message,) = collect(consumer, 1, timeout=30)
            assert message.as_(Unrelated) is None

    def test_errors_carry_portable_codes(self, dest: Destination) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            with pytest.raises(cloudqueue.QueueError) as info:
                producer.send(b"x", attributes={"": "y"})
        error = info.value
        assert error.code is cloudqueue.ErrorCode.INVALID_ARGUMENT
        assert error.retryable is False

    def test_unknown_url_parameter_is_refused(self, dest: Destination) -> None:
        joiner = "&" if "?" in dest.producer_url else "?"
        with pytest.raises(cloudqueue.InvalidArgument) as info:
            cloudqueue.open_producer(dest.producer_url + joiner + "no_such_option=1")
        assert "no_such_option" in str(info.value)
