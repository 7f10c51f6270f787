"""A queue's ``dead_letter_after``, kept where a consumer can read it over AMQP.

The driver must know it: ``nack(delay)`` acks the delivery and publishes a copy (through a
wait queue), and the quorum queue's ``x-delivery-limit`` counts the copy's returns from
zero. The copy carries the deliveries so far (:data:`._wire.PRIOR_DELIVERIES_HEADER`) and
the driver dead-letters it itself once the total reaches the limit. AMQP 0.9.1 cannot read
a queue's arguments back (a passive ``queue.declare`` answers only counts), so
``declare(dead_letter_after=N)`` also keeps N as the *message count* of a classic durable
queue ``cloudqueue.limit.<queue>`` holding N empty messages: a passive declare reads it in
one round trip, atomically, for any number of consumers at once, and nothing ever
consumes it. No such queue means no limit.
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity

from ._delay import derived_name

__all__ = ["LIMIT_PREFIX", "limit_queue_name", "read_limit", "record_limit"]

LIMIT_PREFIX = "cloudqueue.limit."


def limit_queue_name(queue: str) -> str:
    return derived_name(LIMIT_PREFIX, queue)


async def record_limit(channel: AbstractChannel, queue: str, limit: int) -> None:
    """Make ``cloudqueue.limit.<queue>`` hold exactly ``limit`` messages. ``channel`` has
    publisher confirms on: the declare returns once they are all stored."""
    name = limit_queue_name(queue)
    store = await channel.declare_queue(
        name, durable=True, arguments={"x-queue-type": "classic"}
    )
    if store.declaration_result.message_count == limit:
        return
    await store.purge()
    await asyncio.gather(*(
        channel.default_exchange.publish(
            aio_pika.Message(b"", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), name
        )
        for _ in range(limit)
    ))


async def read_limit(channel: AbstractChannel, queue: str) -> int | None:
    """The recorded limit, or None. A missing store closes ``channel`` (404): pass a
    channel of its own."""
    try:
        store = await channel.declare_queue(limit_queue_name(queue), passive=True)
    except ChannelNotFoundEntity:
        return None
    count = store.declaration_result.message_count
    return count if count else None
