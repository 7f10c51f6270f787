"""How the consumer engine holds what one pull returned: the deliveries of a pull
share one lease record until ``extend`` gives a message its own, and the blocking
consumer hands out bare deliveries through ``receive_deliveries`` (the seam the
worker runtime uses) as the asyncio one does."""

from __future__ import annotations

import dataclasses
import itertools
import time

import pytest
from loose_server import LIMITS, LooseServer

import cloudqueue
import cloudqueue.ops
from cloudqueue import Settlement

_names = itertools.count()


class _RecordingServer(LooseServer):
    """The loose server, remembering which leases were renewed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.renewed: set[object] = set()

    def renew(self, ack_id: object) -> bool:
        with self.lock:
            self.renewed.add(ack_id)
        return super().renew(ack_id)


def test_extending_one_message_of_a_pull_leaves_the_others_leases_alone() -> None:
    server = _RecordingServer({"": 2}, lease=0.4)
    with server.consumer(max_lease_extension=0) as consumer:
        first, second = consumer.receive(max_messages=2, wait=1.0)
        first.extend(5.0)
        give_up = time.monotonic() + 10.0
        while not server.renewed and time.monotonic() < give_up:
            time.sleep(0.02)
        # Both leases end together, so one look at leases renews every one it
        # should: the second was never extended, and must not be.
        assert server.renewed == {first.delivery.token}
        first.ack()
        second.ack()
    assert sorted(server.acked[""]) == [0, 1]


def test_a_message_extended_once_still_keeps_to_the_provider_total() -> None:
    limits = dataclasses.replace(LIMITS, max_lease_total=5.0)
    server = LooseServer({"": 2}, lease=0.4, limits=limits)
    with server.consumer(max_lease_extension=0) as consumer:
        first, second = consumer.receive(max_messages=2, wait=1.0)
        first.extend(1.0)  # its own record now: the total still counts from receipt
        with pytest.raises(cloudqueue.InvalidArgument, match="at most 5s after receipt"):
            first.extend(10.0)
        with pytest.raises(cloudqueue.InvalidArgument, match="at most 5s after receipt"):
            second.extend(10.0)
        first.ack()
        second.ack()
    assert sorted(server.acked[""]) == [0, 1]


def test_receive_deliveries_hands_out_deliveries_the_consumer_settles() -> None:
    url = f"memory://engine-holding-{next(_names)}"
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(f"m{i}") for i in range(3)])
    with cloudqueue.open_consumer(url) as consumer:
        deliveries = consumer.receive_deliveries(10, 1.0)
        assert [delivery.body for delivery in deliveries] == [b"m0", b"m1", b"m2"]
        for delivery in deliveries:
            consumer.settle(delivery, Settlement.ACK, None)
        assert consumer.receive_deliveries(10, 0.0) == []
    assert cloudqueue.ops.stats(url).in_flight == 0
    with cloudqueue.open_consumer(url) as consumer:
        assert consumer.receive(10, 0.1) == []


def test_receive_deliveries_returns_nothing_when_nothing_comes() -> None:
    url = f"memory://engine-holding-{next(_names)}"
    with cloudqueue.open_consumer(url) as consumer:
        assert consumer.receive_deliveries(5, 0.0) == []
