"""Ordering keys where servers differ: several messages of a key per batch, nacks and
lease loss in the middle. The consumer must keep each key in publish order and never
have two unsettled messages of one key in the application's hands."""

from __future__ import annotations

import time

import pytest

import cloudqueue

from ._base import SuiteBase, collect
from ._harness import Destination, Harness

__all__ = ["Ordering"]

KEYS = ("k0", "k1", "k2")


def _send_keyed(dest: Destination, per_key: int) -> None:
    with cloudqueue.open_producer(dest.producer_url) as producer:
        producer.send_batch([
            cloudqueue.Message(f"{key}:{index}", ordering_key=key)
            for index in range(per_key) for key in KEYS
        ])


def _parse(message: cloudqueue.ReceivedMessage) -> tuple[str, int]:
    key, index = message.text().split(":")
    assert message.ordering_key == key
    return key, int(index)


class Ordering(SuiteBase):
    def _refused(self, make: object) -> None:
        dest: Destination = make()  # type: ignore[operator]
        assert not cloudqueue.capabilities(dest.producer_url).ordering
        with cloudqueue.open_producer(dest.producer_url) as producer, \
                pytest.raises(cloudqueue.Unsupported):
            producer.send(b"x", ordering_key="k")

    def test_keys_stay_in_order_through_nacks_with_batches_of_many(
        self, make: object, harness: Harness
    ) -> None:
        if not harness.supports_ordering:
            self._refused(make)
            return
        dest: Destination = make(ordered=True)  # type: ignore[operator]
        per_key = 8
        _send_keyed(dest, per_key)
        nack_once = {("k0", 2), ("k0", 6), ("k1", 5), ("k2", 0)}
        acked: dict[str, list[int]] = {key: [] for key in KEYS}
        with cloudqueue.open_consumer(dest.consumer_url, max_in_flight=50) as consumer:
            deadline = time.monotonic() + 90
            while sum(map(len, acked.values())) < per_key * len(KEYS):
                assert time.monotonic() < deadline, f"keys stalled: {acked}"
                in_hand = consumer.receive(max_messages=10, wait=0.5)
                keys = [_parse(message)[0] for message in in_hand]
                assert len(keys) == len(set(keys)), f"two messages of one key at once: {keys}"
                if in_hand:
                    # While these are unsettled, no later message of their keys may come.
                    more = consumer.receive(max_messages=10, wait=0.2)
                    assert not {_parse(m)[0] for m in more} & set(keys), "a key overtook itself"
                    in_hand += more
                for message in in_hand:
                    key, index = _parse(message)
                    if (key, index) in nack_once:
                        nack_once.discard((key, index))
                        message.nack()
                    else:
                        acked[key].append(index)
                        message.ack()
        assert acked == {key: list(range(per_key)) for key in KEYS}

    def test_a_key_restarts_from_a_message_whose_lease_ran_out(
        self, make: object, harness: Harness
    ) -> None:
        if not harness.supports_ordering:
            self._refused(make)
            return
        lease = harness.short_lease
        dest: Destination = make(ordered=True, lease=lease)  # type: ignore[operator]
        per_key = 4
        _send_keyed(dest, per_key)
        acked: dict[str, list[int]] = {key: [] for key in KEYS}
        # No automatic extension: a message held past its lease is lost to us.
        with cloudqueue.open_consumer(dest.consumer_url, max_lease_extension=0) as consumer:
            (abandoned,) = collect(consumer, 1, timeout=30, ack=False)
            _, lost_index = _parse(abandoned)
            assert lost_index == 0
            time.sleep(lease + harness.timer_slack)
            deadline = time.monotonic() + self.wait_budget(harness, lease) + 60
            while sum(map(len, acked.values())) < per_key * len(KEYS):
                assert time.monotonic() < deadline, f"keys stalled: {acked}"
                for message in consumer.receive(max_messages=10, wait=0.5):
                    key, index = _parse(message)
                    acked[key].append(index)
                    message.ack()
        # Nothing of the abandoned key was acked before the abandoned message came back.
        assert acked == {key: list(range(per_key)) for key in KEYS}
