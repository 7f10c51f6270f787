"""The memory broker's lease bookkeeping past a compaction of its lease heap.

The broker leaves a settled lease's heap entry behind and compacts the heap once
stale tokens outnumber live ones by more than 1,024 (``compact_leases``); a lease
keeps its deadline on its record. These tests settle enough other messages to
force that compaction while one lease is held, then check through the public API
that the held lease still ends when it should: at its deadline if left alone, at
the extended one if extended.
"""

from __future__ import annotations

import uuid

import cloudqueue
import cloudqueue.ops
from cloudqueue.testing.contract._base import collect, quiet_for

#: Settled leases that outnumber one live lease well past the compaction threshold.
SETTLED = 2_500
LEASE = 2.0
#: How late the broker may notice a deadline: it wakes a waiting receive then.
TIMER_SLACK = 0.5


def _fresh_url() -> str:
    return f"memory://broker-leases-{uuid.uuid4().hex[:12]}"


def _settle_many(url: str, consumer: cloudqueue.Consumer, held: set[str]) -> list[str]:
    """Send and ack ``SETTLED`` messages; return the ids of held messages received on
    the way (if a lease ran out meanwhile), unacked."""
    others: list[str] = []
    with cloudqueue.open_producer(url) as producer:
        for start in range(0, SETTLED, 100):
            producer.send_batch([cloudqueue.Message(f"bulk {i}") for i in range(start, start + 100)])
    acked = 0
    while acked < SETTLED:
        batch = consumer.receive(max_messages=100, wait=5.0)
        assert batch, f"only {acked} of {SETTLED} bulk messages came back"
        for message in batch:
            if message.id in held:
                others.append(message.id)
                continue
            message.ack()
            acked += 1
    return others


def test_held_leases_still_run_out_after_the_heap_is_compacted() -> None:
    url = _fresh_url()
    cloudqueue.declare(url, lease=LEASE)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(b"held 1"), cloudqueue.Message(b"held 2")])
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        # Two receives: two leases with their own deadlines, kept apart by the rebuild.
        (first,) = consumer.receive(max_messages=1, wait=10)
        (second,) = consumer.receive(max_messages=1, wait=10)
        held = {first.id, second.id}
        redelivered = _settle_many(url, consumer, held)
        if len(redelivered) < 2:  # usual case: the bulk work took less than the lease
            again = collect(consumer, 2 - len(redelivered), timeout=LEASE + TIMER_SLACK + 5,
                            ack=False)
            assert [message.delivery_attempt for message in again] == [2] * len(again)
            redelivered += [message.id for message in again]
            for message in again:
                message.ack()
        assert sorted(redelivered) == sorted(held)
    assert cloudqueue.ops.stats(url).in_flight == 0


def test_an_extended_lease_outlives_its_old_deadline_across_a_compaction() -> None:
    url = _fresh_url()
    cloudqueue.declare(url, lease=LEASE)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"held")
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        (held,) = collect(consumer, 1, timeout=10, ack=False)
        held.extend(600.0)
        assert _settle_many(url, consumer, {held.id}) == []
        # Past the original deadline: the entry left for it must not end the lease.
        assert quiet_for(consumer, LEASE + TIMER_SLACK) == []
        assert cloudqueue.ops.stats(url).in_flight == 1
        held.ack()
    stats = cloudqueue.ops.stats(url)
    assert (stats.in_flight, stats.available) == (0, 0)
    assert stats.total_received == SETTLED + 1
