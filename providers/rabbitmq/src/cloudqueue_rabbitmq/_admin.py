"""Provisioning: quorum queues, their dead-letter queues, fanout exchanges and bindings.

Every queue is a quorum queue (durable, replicated on a cluster). ``dead_letter_after=N``
sets ``x-delivery-limit`` to N - 1: a quorum queue dead-letters a message once it has been
*returned* more than the limit, i.e. at its (N)th failed delivery. Dead-lettering is
at-least-once (``x-dead-letter-strategy``, which requires ``x-overflow=reject-publish``)
to ``<queue>.dead-letter`` through the default exchange.

AMQP cannot change a queue's arguments: declaring an existing queue with other settings
fails (406) and is reported as FailedPrecondition saying to delete and declare again.

``dead_letter_after=N`` is also recorded for consumers (:mod:`._limit`), and ``delete``
removes a destination's wait queues (:mod:`._delay`) and that record with it.
"""

from __future__ import annotations

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, FieldValue
from aiormq.exceptions import ChannelPreconditionFailed
from cloudqueue.driver import Declaration
from cloudqueue.errors import FailedPrecondition, InvalidArgument, Unsupported

from ._delay import LEVELS, Returning, wait_queue_name
from ._errors import translate_errors
from ._limit import limit_queue_name, record_limit
from ._link import Link
from ._names import DEAD_LETTER_SUFFIX, Names

__all__ = ["declare", "delete", "purge", "queue_arguments", "with_channel"]

#: Quorum queues take delivery limits far beyond this; a larger N is surely a mistake.
MAX_DEAD_LETTER_AFTER = 1000


def queue_arguments(dead_letter_after: int | None, dead_queue: str | None) -> dict[str, FieldValue]:
    arguments: dict[str, FieldValue] = {"x-queue-type": "quorum"}
    if dead_letter_after is not None and dead_queue is not None:
        arguments.update({
            "x-delivery-limit": dead_letter_after - 1,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
    return arguments


async def with_channel(names: Names, purpose: str) -> tuple[Link, AbstractChannel]:
    # Confirms on: the dead_letter_after record is published, and must be stored.
    link = Link(names.broker, confirms=True, name=f"cloudqueue {purpose}")
    with translate_errors(f"{purpose} {names.where}"):
        return link, await link.channel()


def _check(declaration: Declaration) -> None:
    if declaration.ordered:
        raise Unsupported(
            "RabbitMQ queues cannot keep one key's messages in order across nacks and "
            "competing consumers: declare without ordered=True"
        )
    if declaration.deduplicated:
        raise Unsupported("RabbitMQ has no message deduplication (no plugin in the Debian build)")
    after = declaration.dead_letter_after
    if after is not None and not 1 <= after <= MAX_DEAD_LETTER_AFTER:
        raise InvalidArgument(
            f"dead_letter_after={after} is out of range 1..{MAX_DEAD_LETTER_AFTER}"
        )


async def _declare_queue(channel: AbstractChannel, name: str, after: int | None) -> None:
    dead_queue = name + DEAD_LETTER_SUFFIX
    if after is not None:
        await channel.declare_queue(dead_queue, durable=True, arguments=queue_arguments(None, None))
    try:
        await channel.declare_queue(name, durable=True, arguments=queue_arguments(after, dead_queue))
    except ChannelPreconditionFailed as error:
        raise FailedPrecondition(
            f"queue {name!r} exists with other settings (dead_letter_after or queue type) and "
            "RabbitMQ cannot change a queue's arguments: delete it and declare it again"
        ) from error
    if after is not None:
        await record_limit(channel, name, after)


async def declare(names: Names, declaration: Declaration) -> None:
    _check(declaration)
    link, channel = await with_channel(names, "declare")
    try:
        with translate_errors(f"declare {names.where}"):
            if names.exchange is not None:
                exchange = await channel.declare_exchange(
                    names.exchange, ExchangeType.FANOUT, durable=True
                )
            if names.queue is not None:
                # A channel error closes the channel; declare each thing on a live one.
                channel = await link.channel()
                await _declare_queue(channel, names.queue, declaration.dead_letter_after)
                if names.exchange is not None:
                    channel = await link.channel()
                    queue = await channel.get_queue(names.queue, ensure=False)
                    await queue.bind(exchange)
    finally:
        await link.close()


async def purge(names: Names) -> None:
    link, channel = await with_channel(names, "purge")
    try:
        with translate_errors(f"purge {names.where}"):
            queue = await channel.get_queue(names.required_queue(), ensure=True)
            await queue.purge()
    finally:
        await link.close()


async def delete(names: Names) -> None:
    """A queue (or a subscription's queue) with its dead-letter queue; a topic URL without
    a subscription deletes the exchange (its subscriptions' queues stay, unbound)."""
    link, channel = await with_channel(names, "delete")
    try:
        with translate_errors(f"delete {names.where}"):
            if names.queue is not None:
                await channel.queue_delete(names.queue)
                await channel.queue_delete(names.queue + DEAD_LETTER_SUFFIX)
                await channel.queue_delete(limit_queue_name(names.queue))
                await _delete_wait_queues(channel, Returning(names.queue, is_topic=False))
            elif names.exchange is not None:
                await channel.exchange_delete(names.exchange)
                await _delete_wait_queues(channel, Returning(names.exchange, is_topic=True))
    finally:
        await link.close()


async def _delete_wait_queues(channel: AbstractChannel, to: Returning) -> None:
    # Deleting a queue that does not exist is not an error: every level, used or not.
    for level in LEVELS:
        await channel.queue_delete(wait_queue_name(to, level))
