"""Lease deadlines kept by the consumer engine: ``extend(seconds)`` and automatic
extension renew through the driver as often as the server needs, and a refused
renewal makes the message's settlements raise :class:`cloudqueue.LeaseLost`.

The server is :mod:`loose_server`, which grants ``lease`` seconds per renewal
whatever was asked (as Service Bus renews by the entity's lock duration).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from loose_server import LIMITS, LooseServer

import cloudqueue


def _renewals_during(server: LooseServer, seconds: float) -> int:
    before = server.renewals
    time.sleep(seconds)
    return server.renewals - before


def test_extend_keeps_a_message_across_many_short_leases() -> None:
    server = LooseServer({"": 1}, lease=0.4)
    with server.consumer(max_lease_extension=0) as consumer:
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        assert _renewals_during(server, 0.6) == 0  # nobody asked: the lease may end
        server.expire(message.delivery.token)
        (again,) = consumer.receive(max_messages=1, wait=1.0)
        again.extend(1.5)
        # Each renewal buys 0.4 s, so keeping it 1.5 s takes several.
        assert _renewals_during(server, 1.2) >= 3
        again.ack()
    assert server.acked == {"": [0]}


def test_renewals_stop_when_the_asked_for_time_is_over() -> None:
    server = LooseServer({"": 1}, lease=0.4)
    with server.consumer(max_lease_extension=0) as consumer:
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        message.extend(0.8)
        time.sleep(1.0)
        assert _renewals_during(server, 1.0) == 0
        message.nack()


def test_automatic_extension_lasts_max_lease_extension() -> None:
    server = LooseServer({"": 1}, lease=0.4)
    with server.consumer(max_lease_extension=1.0) as consumer:
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        assert _renewals_during(server, 0.9) >= 2
        time.sleep(0.3)
        assert _renewals_during(server, 1.0) == 0
        message.nack()


def test_a_refused_renewal_makes_settling_raise_lease_lost() -> None:
    server = LooseServer({"": 2}, lease=0.4)
    with server.consumer() as consumer:
        first, second = consumer.receive(max_messages=2, wait=1.0)
        server.expire(first.delivery.token)
        time.sleep(0.6)  # the next renewal is refused
        with pytest.raises(cloudqueue.LeaseLost, match=r"cannot ack message -0 .* may be delivered again"):
            first.ack()
        first.nack()  # a nack of a lost message does nothing: it comes back anyway
        second.ack()
        (again,) = consumer.receive(max_messages=1, wait=2.0)
        assert again.id == "-0"
        again.ack()
    assert server.acked == {"": [1, 0]}


def test_extend_refuses_to_keep_a_lease_past_the_provider_total() -> None:
    limits = dataclasses.replace(LIMITS, max_lease_total=5.0)
    server = LooseServer({"": 1}, lease=0.4, limits=limits)
    with server.consumer() as consumer:
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        with pytest.raises(cloudqueue.InvalidArgument, match=r"at most 5s after receipt"):
            message.extend(10.0)
        message.extend(3.0)
        message.ack()


def test_extend_beyond_one_renewal_is_allowed_where_there_is_no_total() -> None:
    # memory renews at most 12 h per call; keeping a message longer is many renewals.
    url = f"memory://long-{time.monotonic_ns()}"
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"x")
    with cloudqueue.open_consumer(url) as consumer:
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        message.extend(3 * 24 * 3600.0)
        message.ack()


def test_an_ack_near_the_end_of_its_lease_is_sent_at_once() -> None:
    server = LooseServer({"": 2}, lease=0.6)
    # A long settle_delay: acks normally wait up to 5 s to share a request.
    with server.consumer(settle_delay=5.0, max_lease_extension=0) as consumer:
        first, second = consumer.receive(max_messages=2, wait=1.0)
        first.ack()  # 0.6 s of lease left: it would lapse while waiting
        deadline = time.monotonic() + 2.0
        while server.acked[""] != [0] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.acked[""] == [0]
        second.nack()
