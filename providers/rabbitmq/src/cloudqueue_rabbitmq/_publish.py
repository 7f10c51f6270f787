"""Sending: one batch of publishes pipelined on a confirm channel, confirms awaited together.

A send returns only when the broker confirmed the message (``basic.ack`` of publisher
confirms): for a quorum queue that is once a majority of its replicas have it. A queue URL
publishes through the default exchange with ``mandatory`` set, so a message to a missing
queue comes back (``basic.return``) and is reported NotFound instead of vanishing. A topic
publishes to its fanout exchange without ``mandatory``: a topic without subscriptions
drops the message, as on the clouds.

A message with a ``delay`` goes to a wait queue (:mod:`._delay`), declared on first use,
always with ``mandatory``; for a queue URL the queue itself is checked first (a passive
declare once per channel), so that a delayed send to a missing queue is NotFound now rather
than a message circling when it is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiormq.exceptions as amqp
from aio_pika.abc import AbstractChannel, AbstractExchange
from cloudqueue.driver import Capabilities, Message, TopicDriver
from cloudqueue.errors import NotFound, QueueError, ResourceExhausted
from pamqp.commands import Basic

from ._capabilities import CAPABILITIES
from ._delay import Returning, level_for, wait_queue_arguments, wait_queue_name
from ._errors import translate_errors, translated_error
from ._link import Link
from ._linked import Linked
from ._loop import LoopThread
from ._names import Names
from ._wire import outgoing

__all__ = ["RabbitTopic"]


class RabbitTopic(Linked, TopicDriver):
    def __init__(self, loop: LoopThread, names: Names) -> None:
        self._loop = loop
        self._names = names
        self._link = Link(names.broker, confirms=True, name=f"cloudqueue producer {names.where}")
        self._exchange: tuple[int, AbstractExchange] | None = None
        #: Wait queues (and a queue URL's queue) known to exist on the channel of this
        #: generation: declared once per channel, not per send.
        self._declared: tuple[int, set[str]] = (0, set())

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def measure(self, message: Message) -> int:
        # Header tables add a type byte and length fields per entry; count them too.
        size = len(message.body)
        for name, value in message.attributes.items():
            size += len(name.encode()) + len(value.encode()) + 6
        return size

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        return self._loop.run(self._send(messages))

    async def asend_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        return await self._loop.arun(self._send(messages))

    async def _target(self, channel: AbstractChannel) -> tuple[AbstractExchange, str]:
        names = self._names
        if names.exchange is None:
            return channel.default_exchange, names.required_queue()
        cached = self._exchange
        if cached is None or cached[0] != self._link.generation:
            # A passive declare once per channel: a missing topic is a clean NotFound
            # here rather than a channel closed under a publish.
            exchange = await channel.get_exchange(names.exchange, ensure=True)
            cached = self._exchange = (self._link.generation, exchange)
        return cached[1], ""

    def _known(self) -> set[str]:
        generation, names = self._declared
        if generation != self._link.generation:
            names = set()
            self._declared = (self._link.generation, names)
        return names

    async def _wait_queue(self, channel: AbstractChannel, delay: float) -> str:
        """The wait queue for ``delay``, declared on this channel if it was not yet."""
        names = self._names
        known = self._known()
        if names.exchange is None and names.queue not in known:
            await channel.get_queue(names.required_queue(), ensure=True)  # 404 if missing
            known.add(names.required_queue())
        returning = (
            Returning(names.exchange, is_topic=True) if names.exchange is not None
            else Returning(names.required_queue(), is_topic=False)
        )
        level = level_for(delay)
        wait_queue = wait_queue_name(returning, level)
        if wait_queue not in known:
            await channel.declare_queue(
                wait_queue, durable=True, arguments=wait_queue_arguments(returning, level)
            )
            known.add(wait_queue)
        return wait_queue

    async def _routes(
        self, channel: AbstractChannel, messages: Sequence[Message]
    ) -> list[tuple[AbstractExchange, str, bool]]:
        """(exchange, routing key, mandatory) per message."""
        exchange, routing_key = await self._target(channel)
        direct = (exchange, routing_key, self._names.exchange is None)
        routes = []
        for message in messages:
            if message.delay:
                wait_queue = await self._wait_queue(channel, message.delay)
                routes.append((channel.default_exchange, wait_queue, True))
            else:
                routes.append(direct)
        return routes

    async def _send(self, messages: Sequence[Message]) -> list[str | QueueError]:
        where = self._names.where
        with translate_errors(f"send to {where}"):
            channel = await self._link.channel()
            routes = await self._routes(channel, messages)
        wire = [outgoing(message) for message in messages]
        results = await asyncio.gather(
            *(
                exchange.publish(m, key, mandatory=mandatory)
                for m, (exchange, key, mandatory) in zip(wire, routes, strict=True)
            ),
            return_exceptions=True,
        )
        outcomes: list[str | QueueError] = []
        for sent, result in zip(wire, results, strict=True):
            if isinstance(result, BaseException):
                outcomes.append(self._failure(result, where))
            else:
                assert sent.message_id is not None
                outcomes.append(sent.message_id)
        return outcomes

    @staticmethod
    def _failure(error: BaseException, where: str) -> QueueError:
        if not isinstance(error, Exception):
            raise error  # cancellation passes through
        frame = error.frame if isinstance(error, amqp.DeliveryError) else None
        if isinstance(frame, Basic.Return):
            # mandatory, and nowhere to route it: the queue does not exist.
            failed: QueueError = NotFound(
                f"send to {where} failed: no such queue "
                f"(returned {frame.reply_code} {frame.reply_text})"
            )
        elif isinstance(frame, Basic.Nack):
            # The broker refused it: a queue at its length limit with reject-publish.
            failed = ResourceExhausted(f"{where} refused the message (basic.nack)")
        else:
            return translated_error(error, f"send to {where}")
        failed.__cause__ = error
        return failed

    def close(self) -> None:
        self._loop.run(self._link.close())

    async def aclose(self) -> None:
        await self._loop.arun(self._link.close())


