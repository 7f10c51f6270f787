"""Delivery semantics: competing consumers, nack, leases, dead letters, restarts
(cases 6-15)."""

from __future__ import annotations

import threading
import time

import pytest

import cloudqueue
from cloudqueue.wire import DEAD_LETTER_REASON

from ._base import SuiteBase, collect, quiet_for
from ._harness import Destination, Harness

__all__ = ["Delivery"]


class Delivery(SuiteBase):
    def test_competing_consumers_share_without_loss_or_duplicates(
        self, dest: Destination
    ) -> None:
        count = 60
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(f"{i}") for i in range(count)])
        seen: list[str] = []
        lock = threading.Lock()

        def work() -> None:
            with cloudqueue.open_consumer(dest.consumer_url, max_in_flight=10) as consumer:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    with lock:
                        if len(seen) >= count:
                            return
                    for message in consumer.receive(max_messages=5, wait=0.5):
                        with lock:
                            seen.append(message.text())
                        message.ack()

        workers = [threading.Thread(target=work) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert sorted(seen, key=int) == [str(i) for i in range(count)]

    def test_nack_redelivers_with_a_higher_attempt(self, dest: Destination, harness: Harness) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"again")
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (first,) = collect(consumer, 1, timeout=30, ack=False)
            first.nack()
            (second,) = collect(consumer, 1, timeout=self.wait_budget(harness, 0), ack=False)
            assert second.id == first.id and second.body == b"again"
            if harness.supports_delivery_attempt:
                assert first.delivery_attempt == 1
                assert second.delivery_attempt == 2
            else:
                assert second.delivery_attempt is None
            second.ack()
            assert quiet_for(consumer, harness.short_lease + harness.timer_slack) == []

    def test_nack_with_delay_is_honoured(self, dest: Destination, harness: Harness) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"later")
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            if not harness.supports_nack_delay:
                with pytest.raises(cloudqueue.Unsupported):
                    message.nack(delay=2.0)
                message.nack()
                return
            delay = 2.0
            nacked_at = time.monotonic()
            message.nack(delay=delay)
            (again,) = collect(consumer, 1, timeout=self.wait_budget(harness, delay), ack=True)
            elapsed = time.monotonic() - nacked_at
            assert again.id == message.id
            assert elapsed >= delay - harness.timer_slack

    def test_handler_failures_are_eventually_processed(self, dest: Destination) -> None:
        count = 12
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(f"{i}") for i in range(count)])
        done: set[str] = set()
        failed_once: set[str] = set()
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            deadline = time.monotonic() + 60
            while len(done) < count and time.monotonic() < deadline:
                for message in consumer.receive(max_messages=10, wait=1.0):
                    text = message.text()
                    if int(text) % 3 == 0 and text not in failed_once:
                        failed_once.add(text)
                        message.nack()
                    else:
                        done.add(text)
                        message.ack()
        assert done == {str(i) for i in range(count)}
        assert failed_once == {str(i) for i in range(0, count, 3)}

    def test_double_ack_and_nack_after_ack_are_harmless(
        self, dest: Destination, harness: Harness
    ) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"once")
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            message.ack()
            message.ack()
            message.nack()
            assert quiet_for(consumer, harness.short_lease + harness.timer_slack + 1) == []

    def test_lease_expiry_redelivers(self, make: object, harness: Harness) -> None:
        dest: Destination = make(lease=harness.short_lease)  # type: ignore[operator]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"slow")
        # Automatic extension off: the lease must run out.
        with cloudqueue.open_consumer(dest.consumer_url, max_lease_extension=0) as consumer:
            (first,) = collect(consumer, 1, timeout=30, ack=False)
            budget = self.wait_budget(harness, harness.short_lease)
            (second,) = collect(consumer, 1, timeout=budget, ack=False)
            assert second.id == first.id
            if harness.supports_delivery_attempt:
                assert second.delivery_attempt == 2
            second.ack()

    def test_explicit_extension_prevents_redelivery(
        self, make: object, harness: Harness
    ) -> None:
        lease = harness.short_lease
        dest: Destination = make(lease=lease)  # type: ignore[operator]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"long job")
        with cloudqueue.open_consumer(dest.consumer_url, max_lease_extension=0) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            if not harness.supports_lease_extension:
                with pytest.raises(cloudqueue.Unsupported):
                    message.extend(lease * 4)
                return
            message.extend(lease * 4)
            assert quiet_for(consumer, lease * 2 + harness.timer_slack) == []
            message.ack()

    def test_automatic_extension_keeps_a_slow_message(
        self, make: object, harness: Harness
    ) -> None:
        lease = harness.short_lease
        dest: Destination = make(lease=lease)  # type: ignore[operator]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"held")
        with cloudqueue.open_consumer(dest.consumer_url) as holder, \
                cloudqueue.open_consumer(dest.consumer_url) as other:
            (message,) = collect(holder, 1, timeout=30, ack=False)
            # Longer than two leases: without extension `other` would get it.
            stolen = quiet_for(other, lease * 2.5 + harness.timer_slack)
            if harness.supports_lease_extension:
                assert stolen == []
                message.ack()
            else:
                assert [m.id for m in stolen] == [message.id]

    def test_dead_letter_after_the_delivery_limit(self, make: object, harness: Harness) -> None:
        limit = harness.dead_letter_after_for_tests
        if not harness.supports_dead_letter:
            dest: Destination = make()  # type: ignore[operator]
            assert not cloudqueue.capabilities(dest.consumer_url).dead_letter
            if not harness.provider_declares_dead_letters:
                with pytest.raises(cloudqueue.Unsupported):
                    make(dead_letter_after=limit)  # type: ignore[operator]
            return
        dest = make(dead_letter_after=limit)  # type: ignore[operator]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            message_id = producer.send(b"poison", attributes={"kind": "bad"})
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            for attempt in range(1, limit + 1):
                (message,) = collect(consumer, 1, timeout=self.wait_budget(harness, 0), ack=False)
                assert message.id == message_id
                if harness.supports_delivery_attempt:
                    assert message.delivery_attempt == attempt
                message.nack()
            assert quiet_for(consumer, 1.0 + harness.timer_slack) == []
        dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
        with cloudqueue.open_consumer(dead_url) as dead:
            (dead_message,) = collect(dead, 1, timeout=self.wait_budget(harness, 1))
        assert dead_message.body == b"poison"
        assert dead_message.attributes.get("kind") == "bad"

    def test_explicit_dead_letter_carries_the_reason(
        self, make: object, harness: Harness
    ) -> None:
        if not harness.supports_dead_letter:
            dest: Destination = make()  # type: ignore[operator]
            with cloudqueue.open_producer(dest.producer_url) as producer:
                producer.send(b"x")
            with cloudqueue.open_consumer(dest.consumer_url) as consumer:
                (message,) = collect(consumer, 1, timeout=30, ack=False)
                with pytest.raises(cloudqueue.Unsupported):
                    message.dead_letter("no")
                message.ack()
            return
        dest = make(dead_letter_after=5)  # type: ignore[operator]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"reject me", attributes={"k": "v"})
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            message.dead_letter(reason="invalid order total")
            assert quiet_for(consumer, harness.short_lease + harness.timer_slack) == []
        with cloudqueue.open_consumer(cloudqueue.dead_letter_url(dest.consumer_url)) as dead:
            (dead_message,) = collect(dead, 1, timeout=30)
        assert dead_message.body == b"reject me"
        assert dead_message.attributes.get("k") == "v"
        assert dead_message.attributes.get(DEAD_LETTER_REASON) == "invalid order total"

    def test_delayed_delivery(self, dest: Destination, harness: Harness) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            if not harness.supports_delayed_delivery:
                assert not producer.capabilities.delayed_delivery
                with pytest.raises(cloudqueue.Unsupported):
                    producer.send(b"later", delay=2.0)
                return
            sent_at = time.monotonic()
            producer.send(b"later", delay=2.0)
            producer.send(b"now")
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (first,) = collect(consumer, 1, timeout=30)
            assert first.body == b"now"
            (second,) = collect(consumer, 1, timeout=self.wait_budget(harness, 2.0))
        assert second.body == b"later"
        assert time.monotonic() - sent_at >= 2.0 - harness.timer_slack

    def test_no_loss_across_consumer_restarts(self, dest: Destination) -> None:
        count = 20
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(f"{i}") for i in range(count)])
        acked: set[str] = set()
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            for message in collect(consumer, 5, timeout=30, ack=False):
                acked.add(message.text())
                message.ack()
            # More may be prefetched here; close() must give them back.
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            rest = collect(consumer, count - len(acked), timeout=60)
        assert acked | {m.text() for m in rest} == {str(i) for i in range(count)}
        assert not acked & {m.text() for m in rest}

    def test_fan_out_gives_every_subscription_every_message(
        self, make: object, harness: Harness
    ) -> None:
        if not harness.supports_fan_out:
            dest: Destination = make()  # type: ignore[operator]
            assert not cloudqueue.capabilities(dest.producer_url).fan_out
            with pytest.raises((cloudqueue.InvalidArgument, cloudqueue.Unsupported)):
                joiner = "&" if "?" in dest.producer_url else "?"
                cloudqueue.open_consumer(dest.producer_url + joiner + "subscription=x")
            return
        dest = make(subscriptions=3)  # type: ignore[operator]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send_batch([cloudqueue.Message(f"{i}") for i in range(10)])
        for url in (dest.consumer_url, *dest.other_subscriptions):
            with cloudqueue.open_consumer(url) as consumer:
                got = collect(consumer, 10, timeout=30)
            assert sorted(m.text() for m in got) == [str(i) for i in range(10)], url

    def test_ordering_per_key(self, make: object, harness: Harness) -> None:
        if not harness.supports_ordering:
            dest: Destination = make()  # type: ignore[operator]
            with cloudqueue.open_producer(dest.producer_url) as producer:
                with pytest.raises(cloudqueue.Unsupported):
                    producer.send(b"x", ordering_key="k")
            return
        dest = make(ordered=True)  # type: ignore[operator]
        keys = ["a", "b", "c"]
        with cloudqueue.open_producer(dest.producer_url) as producer:
            for index in range(10):
                producer.send_batch(
                    [cloudqueue.Message(f"{key}{index}", ordering_key=key) for key in keys]
                )
        seen: dict[str, list[int]] = {key: [] for key in keys}
        redelivered = False
        with cloudqueue.open_consumer(dest.consumer_url) as first, \
                cloudqueue.open_consumer(dest.consumer_url) as second:
            deadline = time.monotonic() + 60
            while sum(map(len, seen.values())) < 30 and time.monotonic() < deadline:
                for consumer in (first, second):
                    for message in consumer.receive(max_messages=4, wait=0.3):
                        assert message.ordering_key == message.text()[0]
                        number = int(message.text()[1:])
                        if number == 4 and not redelivered:
                            redelivered = True
                            message.nack()  # must come back before 5, 6...
                            continue
                        seen[message.text()[0]].append(number)
                        message.ack()
        for key in keys:
            assert seen[key] == list(range(10)), key

    def test_deduplication(self, make: object, harness: Harness) -> None:
        if not harness.supports_deduplication:
            dest: Destination = make()  # type: ignore[operator]
            with cloudqueue.open_producer(dest.producer_url) as producer:
                with pytest.raises(cloudqueue.Unsupported):
                    producer.send(b"x", deduplication_id="d1")
            return
        extra = {"ordered": True} if harness.supports_ordering else {}
        dest = make(deduplicated=True, **extra)  # type: ignore[operator]
        key = "k" if harness.supports_ordering else None
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"first", deduplication_id="order-1", ordering_key=key)
            producer.send(b"repeat", deduplication_id="order-1", ordering_key=key)
            producer.send(b"other", deduplication_id="order-2", ordering_key=key)
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 2, timeout=30) + quiet_for(consumer, 1.5)
        assert sorted(m.body for m in got) == [b"first", b"other"]

    def test_a_received_message_carries_the_deduplication_id_it_was_sent_with(
        self, make: object, harness: Harness
    ) -> None:
        # Where the provider makes ids up for messages sent without one (SQS FIFO,
        # Service Bus), they must not show: an idempotency key needs the sender's.
        if harness.supports_deduplication:
            dest: Destination = make(deduplicated=True)  # type: ignore[operator]
            sent = [cloudqueue.Message(b"with", deduplication_id="order-7"),
                    cloudqueue.Message(b"without")]
            expected = {b"with": "order-7", b"without": None}
        else:
            dest = make()  # type: ignore[operator]
            sent = [cloudqueue.Message(b"without")]
            expected = {b"without": None}
        with cloudqueue.open_producer(dest.producer_url) as producer:
            for message in sent:
                producer.send(message)
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, len(sent), timeout=30)
        assert {m.body: m.deduplication_id for m in got} == expected

    def test_delivery_attempt_is_reported(self, dest: Destination, harness: Harness) -> None:
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"count me")
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            (message,) = collect(consumer, 1, timeout=30)
        if harness.supports_delivery_attempt:
            assert message.delivery_attempt == 1
        else:
            assert message.delivery_attempt is None
        assert cloudqueue.capabilities(dest.consumer_url).delivery_attempt == (
            harness.supports_delivery_attempt
        )
