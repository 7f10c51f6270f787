"""Publish and receive: bodies, attributes, sizes, isolation (cases 1-5, 16-19)."""

from __future__ import annotations

import json

import pytest

import cloudqueue

from ._base import SuiteBase, collect, quiet_for
from ._harness import Destination, Harness

__all__ = ["PublishReceive"]


class PublishReceive(SuiteBase):
    def test_round_trip_keeps_body_attributes_and_ids(self, dest: Destination) -> None:
        sent = {}
        with cloudqueue.open_producer(dest.producer_url) as producer:
            for index in range(25):
                body = f"message {index}".encode()
                attributes = {"index": str(index), "kind": "created"}
                message_id = producer.send(body, attributes=attributes)
                assert isinstance(message_id, str) and message_id
                sent[message_id] = (body, attributes)
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 25, timeout=30)
        assert len(got) == 25
        for message in got:
            assert message.id in sent
            body, attributes = sent[message.id]
            assert message.body == body
            assert message.attributes == attributes
            assert message.enqueued_at is None or message.enqueued_at.tzinfo is not None

    def test_text_and_json_bodies(self, dest: Destination) -> None:
        document = {"order": 17, "items": ["tea", "cake"], "note": "grüße ✓"}
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(json.dumps(document))
            producer.send("plain text ✓")
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 2, timeout=30)
        texts = sorted(message.text() for message in got)
        assert texts == sorted([json.dumps(document), "plain text ✓"])
        assert json.loads(next(t for t in texts if t.startswith("{"))) == document

    def test_binary_and_empty_bodies(self, dest: Destination) -> None:
        bodies = [bytes(range(256)), b"\x00\x01\x0b\xff\xfe", b"", "\ufffe".encode(), b"\r\n"]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            ids = producer.send_batch([cloudqueue.Message(body) for body in bodies])
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, len(bodies), timeout=30)
        assert {m.id: m.body for m in got} == dict(zip(ids, bodies, strict=True))

    def test_largest_body_round_trips_and_one_byte_more_is_refused(
        self, dest: Destination, harness: Harness
    ) -> None:
        limit = cloudqueue.capabilities(dest.producer_url).limits.max_message_bytes
        size = min(limit, harness.max_body_for_tests or limit)
        with cloudqueue.open_producer(dest.producer_url) as producer:
            # Measure the driver's own accounting (encodings may count).
            body = b"x" * size
            while producer.measure(cloudqueue.Message(body)) > limit:
                body = body[: len(body) - max(1, (len(body) // 100))]
            message_id = producer.send(body)
            with pytest.raises(cloudqueue.MessageTooLarge) as info:
                producer.send(b"y" * (limit + 1))
            assert str(limit) in str(info.value)
            assert isinstance(info.value, cloudqueue.InvalidArgument)
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 1, timeout=30)
            got += quiet_for(consumer, 1.0)
        assert [(m.id, m.body) for m in got] == [(message_id, body)]

    def test_odd_attributes_round_trip(self, dest: Destination) -> None:
        attributes = {
            "unicode": "grüße ✓ 中文",
            "empty-ish": " ",
            "with.dots_and-dashes": "x",
            "json": '{"a": [1, 2]}',
            "newline": "line1\nline2",
        }
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"body", attributes=attributes)
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (message,) = collect(consumer, 1, timeout=30)
        assert message.attributes == attributes

    @pytest.mark.parametrize(
        "attributes",
        [
            {"": "empty name"},
            {"number": 5},
            {"none": None},
            {1: "int name"},
        ],
        ids=["empty-name", "int-value", "none-value", "int-name"],
    )
    def test_invalid_attributes_are_refused_before_sending(
        self, dest: Destination, attributes: dict[object, object]
    ) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            with pytest.raises(cloudqueue.InvalidArgument):
                producer.send_batch(
                    [cloudqueue.Message(b"ok"), cloudqueue.Message(b"bad", attributes=attributes)]  # type: ignore[arg-type]
                )
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            assert quiet_for(consumer, 1.0) == []

    def test_too_many_attributes_are_refused_naming_the_limit(self, dest: Destination) -> None:
        limit = cloudqueue.capabilities(dest.producer_url).limits.max_attributes
        attributes = {f"a{index}": "v" for index in range(limit + 1)}
        with cloudqueue.open_producer(dest.producer_url) as producer:
            with pytest.raises(cloudqueue.InvalidArgument) as info:
                producer.send(b"x", attributes=attributes)
        assert str(limit) in str(info.value)

    def test_destinations_are_isolated(self, make: object) -> None:
        first: Destination = make()  # type: ignore[operator]
        second: Destination = make()  # type: ignore[operator]
        with cloudqueue.open_producer(first.producer_url) as producer:
            producer.send(b"for the first")
        with cloudqueue.open_producer(second.producer_url) as producer:
            producer.send(b"for the second")
        with cloudqueue.open_consumer(second.consumer_url) as consumer:
            got = collect(consumer, 1, timeout=30) + quiet_for(consumer, 1.0)
        assert [m.body for m in got] == [b"for the second"]
        with cloudqueue.open_consumer(first.consumer_url) as consumer:
            got = collect(consumer, 1, timeout=30) + quiet_for(consumer, 1.0)
        assert [m.body for m in got] == [b"for the first"]

    def test_batches_beyond_the_provider_limit_are_split(self, dest: Destination) -> None:
        limits = cloudqueue.capabilities(dest.producer_url).limits
        count = min(limits.max_send_batch * 2 + 3, 250)
        messages = [cloudqueue.Message(f"m{i}", attributes={"i": str(i)}) for i in range(count)]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            ids = producer.send_batch(messages)
        assert len(ids) == count and len(set(ids)) == count
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, count, timeout=60)
        assert sorted(m.id for m in got) == sorted(ids)

    def test_a_bad_message_fails_the_whole_batch_before_sending(self, dest: Destination) -> None:
        limit = cloudqueue.capabilities(dest.producer_url).limits.max_message_bytes
        batch = [cloudqueue.Message(b"fine"), cloudqueue.Message(b"z" * (limit + 1))]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            with pytest.raises(cloudqueue.MessageTooLarge) as info:
                producer.send_batch(batch)
            assert "message 1" in str(info.value)
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            assert quiet_for(consumer, 1.0) == []

    def test_receive_returns_at_most_max_messages(self, dest: Destination) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(f"{i}") for i in range(7)])
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            seen = []
            for _ in range(40):
                batch = consumer.receive(max_messages=3, wait=1.0)
                assert len(batch) <= 3
                for message in batch:
                    message.ack()
                seen.extend(batch)
                if len(seen) == 7:
                    break
        assert sorted(m.text() for m in seen) == [str(i) for i in range(7)]

    def test_receive_waits_then_returns_empty(self, dest: Destination) -> None:
        import time

        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            started = time.monotonic()
            assert consumer.receive(max_messages=5, wait=1.0) == []
            assert time.monotonic() - started >= 0.9
