"""Receiving and settling on one consumer channel (``basic.consume`` with ``basic.qos``).

* Prefetch: ``basic.qos`` is the ``max_messages`` the portable layer asks for (it sizes its
  batches to its throughput). The consumer stays between receives: cancelling one while the
  broker is delivering to it returns those messages and counts a delivery on each. It is
  restarted only to grow the prefetch (``basic.qos`` applies to later consumers) and stopped
  before a nack, so that a message given back goes to the queue rather than straight into
  this prefetch. A message prefetched but never handed out when the consumer closes goes
  back to the queue and counts one delivery (a quorum queue counts every return).
* Leases: see :mod:`._capabilities`. A lease timer on the loop thread gives the delivery
  back when its lease ends; ``extend`` moves it. A delivery whose channel is gone (the
  connection was lost) is back in the queue already: settling it reports LeaseLost, and
  nothing is sent, since its tag would mean another delivery on a new channel.
* Settlements (``basic.ack``/``basic.nack``) have no reply in AMQP 0.9.1. Each batch is
  followed by a ``basic.qos`` round trip on the same channel: the broker handles a
  channel's methods in order, so once the reply is in, the settlements have reached the
  queue, and an ack reported done is not undone by a connection lost just after. So a
  batch's acks are queued without waiting for each to be written, as one ``basic.ack``
  with ``multiple`` where the batch holds every open tag up to it (:mod:`._tags`).
* Dead letters: ``dead_letter(reason)`` publishes a copy with the reason to
  ``<queue>.dead-letter`` (declaring it, confirmed), then acks the original: at least once.
* ``nack(delay)``: a copy carrying the deliveries so far goes (confirmed) to the queue's
  wait queue for the delay (:mod:`._delay`), then the original is acked: nothing lost, at
  worst a duplicate. The quorum queue's delivery limit counts the copy from zero, so the
  driver enforces ``dead_letter_after`` (read from :mod:`._limit`) for copies itself: a
  delayed nack at the limit, a nack of a copy at the limit, and a copy received past it
  (its lease ran out) go to the dead-letter queue with the reason ``delivery_limit``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from cloudqueue.driver import BatchErrors, Capabilities, Delivery, SubscriptionDriver
from cloudqueue.errors import LeaseLost, QueueError
from cloudqueue.wire import DEAD_LETTER_REASON

from ._admin import queue_arguments, with_channel
from ._capabilities import CAPABILITIES
from ._delay import Returning, level_for, wait_queue_arguments, wait_queue_name
from ._errors import translate_errors, translated_error
from ._limit import read_limit
from ._link import Link
from ._linked import Linked
from ._loop import LoopThread
from ._names import Names
from ._tags import OpenTags
from ._wire import (
    PRIOR_DELIVERIES_HEADER,
    attributes_of,
    copy_of,
    delivery_attempt_of,
    message_id_of,
    prior_deliveries_of,
)

__all__ = ["LIMIT_REASON", "RabbitSubscription"]

#: The reason a copy dead-lettered by the driver at ``dead_letter_after`` carries: the word
#: the broker writes in ``x-death`` when it dead-letters at its own delivery limit.
LIMIT_REASON = "delivery_limit"

#: A copy's new home: (routing key through the default exchange, the message).
_Route = tuple[str, aio_pika.Message]


@dataclass(eq=False)
class _Lease:
    """The settlement token of one delivery."""

    message: AbstractIncomingMessage
    generation: int
    timer: asyncio.TimerHandle | None = None
    #: Set once it is settled, expired or its channel is gone: no more calls for it.
    over: str | None = None
    attempt: int = field(default=1)
    #: Deliveries before this copy (0: not a copy made by ``nack(delay)``).
    prior: int = 0


class RabbitSubscription(Linked, SubscriptionDriver):
    def __init__(self, loop: LoopThread, names: Names) -> None:
        self._loop = loop
        self._names = names
        self._queue_name = names.required_queue()
        self._link = Link(names.broker, confirms=True, name=f"cloudqueue consumer {names.where}")
        self._buffer: collections.deque[AbstractIncomingMessage] = collections.deque()
        self._open_tags = OpenTags()
        self._arrived: asyncio.Event | None = None
        self._consuming: tuple[int, AbstractQueue] | None = None
        self._prefetch = 0
        self._leases: set[_Lease] = set()
        self._interrupted = 0
        self._consumes = 0
        self._tag: str | None = None
        self._tag_prefix = os.urandom(8).hex()
        self._expiring: set[asyncio.Future[None]] = set()
        #: The queue's dead_letter_after, once read (:mod:`._limit`).
        self._limit: tuple[int | None] | None = None
        #: Wait queues declared on the channel of this generation.
        self._waits: tuple[int, set[str]] = (0, set())

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    # -- receiving -------------------------------------------------------------------

    async def _queue(self) -> AbstractQueue:
        """The queue on the live channel (a passive declare per channel: 404 if missing)."""
        channel = await self._link.channel()
        generation = self._link.generation
        if self._consuming is None or self._consuming[0] != generation:
            if self._consuming is not None:
                self._channel_lost()
            self._open_tags.reset()
            queue = await channel.get_queue(self._queue_name, ensure=True)
            self._consuming = (generation, queue)
        return self._consuming[1]

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        assert message.delivery_tag is not None  # consumed with acks
        self._open_tags.delivered(message.delivery_tag)
        self._buffer.append(message)
        if self._arrived is not None:
            self._arrived.set()

    def _channel_lost(self) -> None:
        """The channel is gone: the broker has requeued what it had handed us."""
        self._buffer.clear()
        self._open_tags.reset()
        self._consuming = None
        self._tag = None
        self._prefetch = 0
        for lease in list(self._leases):
            self._end(lease, "its channel was closed (connection lost)")

    async def _receive(self, max_messages: int, wait: float) -> list[Delivery]:
        if not self._buffer:
            with translate_errors(f"receive from {self._names.where}"):
                await self._wait_for_messages(max_messages, wait)
        started = time.monotonic()
        out: list[Delivery] = []
        while self._buffer and len(out) < max_messages:
            out.append(self._delivery(self._buffer.popleft(), started))
        if any(isinstance(d.token, _Lease) and d.token.prior for d in out):
            out = await self._without_spent_copies(out)
        return out

    async def _without_spent_copies(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Copies past ``dead_letter_after`` (their lease ran out, or a consumer went away
        holding them) go to the dead-letter queue instead of to the application."""
        limit = await self._dead_letter_after()
        if limit is None:
            return deliveries
        spent = [d for d in deliveries if _lease_of(d).prior and _lease_of(d).attempt > limit]
        if spent:
            await self._to_dead_letters([d.token for d in spent], [LIMIT_REASON] * len(spent))
        gone = {id(d) for d in spent}
        return [d for d in deliveries if id(d) not in gone]

    async def _dead_letter_after(self) -> int | None:
        """The queue's ``dead_letter_after``, read once; None while it cannot be read (the
        broker then still enforces it for everything but copies)."""
        if self._limit is None:
            link, channel = await with_channel(self._names, "read dead_letter_after of")
            try:
                self._limit = (await read_limit(channel, self._queue_name),)
            except Exception:  # read again next time; never fail a receive for it
                return None
            finally:
                await link.close()
        return self._limit[0]

    async def _start_consumer(self, queue: AbstractQueue, max_messages: int) -> None:
        """Consume with a prefetch of what the portable layer asks for. The consumer stays
        between receives (cancelling one while the broker is delivering to it returns those
        messages and counts a delivery on them); it is restarted only to grow the prefetch,
        which RabbitMQ applies to consumers started after ``basic.qos``."""
        if self._tag is not None:
            if max_messages <= self._prefetch:
                return
            await self._stop_consumer()
        channel = await self._link.channel()
        await channel.set_qos(prefetch_count=max_messages)
        self._prefetch = max_messages
        # Our own tag: aiormq draws its tags from the `random` module, which tests (and
        # applications) may seed, and a tag reused on one channel crashes a 3.10 channel.
        self._consumes += 1
        tag = f"cloudqueue.{self._tag_prefix}.{self._consumes}"
        await queue.consume(self._on_message, consumer_tag=tag)
        self._tag = tag

    async def _stop_consumer(self) -> None:
        tag, self._tag = self._tag, None
        if tag is not None and self._consuming is not None and self._link.current() is not None:
            await self._consuming[1].cancel(tag)

    async def _wait_for_messages(self, max_messages: int, wait: float) -> None:
        queue = await self._queue()
        await self._start_consumer(queue, max_messages)
        if self._arrived is None:
            self._arrived = asyncio.Event()
        interrupted = self._interrupted
        deadline = time.monotonic() + wait
        while not self._buffer and self._interrupted == interrupted:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._link.current() is None:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        if self._link.current() is None:
            self._channel_lost()
            raise ConnectionError("the connection to the broker was lost while receiving")

    def _delivery(self, message: AbstractIncomingMessage, now: float) -> Delivery:
        lease = _Lease(
            message, self._link.generation, attempt=delivery_attempt_of(message),
            prior=prior_deliveries_of(message),
        )
        self._leases.add(lease)
        deadline = now + self._names.lease
        lease.timer = asyncio.get_running_loop().call_at(
            _loop_time(deadline), self._expire, lease
        )
        return Delivery(
            token=lease,
            id=message_id_of(message),
            body=message.body,
            attributes=attributes_of(message),
            delivery_attempt=lease.attempt,
            enqueued_at=message.timestamp,
            lease_deadline=deadline,
            native=message,
        )

    def _expire(self, lease: _Lease) -> None:
        if lease.over is None:
            self._end(lease, "its lease ended")
            if self._link.current() is not None and lease.generation == self._link.generation:
                task = asyncio.ensure_future(self._requeue_quietly(lease))
                # Held until done: the loop keeps only weak references to tasks.
                self._expiring.add(task)
                task.add_done_callback(self._expiring.discard)

    def _end(self, lease: _Lease, why: str) -> None:
        lease.over = why
        if lease.timer is not None:
            lease.timer.cancel()
            lease.timer = None
        self._leases.discard(lease)

    def _live(self, token: object) -> _Lease | QueueError:
        assert isinstance(token, _Lease)
        if lease_gone := token.over:
            return LeaseLost(f"message of {self._names.where} is no longer leased: {lease_gone}")
        if token.generation != self._link.generation or self._link.current() is None:
            self._end(token, "its channel was closed (connection lost)")
            return LeaseLost(f"message of {self._names.where}: its channel was closed")
        return token

    # -- settling --------------------------------------------------------------------

    def _take(self, tokens: Sequence[object], doing: str) -> list[_Lease | QueueError]:
        """The live leases among ``tokens``, ended at once (before any await) so that a
        lease timer cannot give one back while it is being settled."""
        taken = [self._live(token) for token in tokens]
        for lease in taken:
            if isinstance(lease, _Lease):
                self._end(lease, doing)
        return taken

    async def _settle(self, tokens: Sequence[object], requeue: bool | None) -> BatchErrors:
        """ack (requeue None) or nack with requeue, then the qos round trip."""
        errors, sent = await self._send_settlements(tokens, requeue)
        what = "ack" if requeue is None else "nack"
        return await self._confirmed(errors, what) if sent else _outcome(errors)

    async def _send_settlements(
        self, tokens: Sequence[object], requeue: bool | None
    ) -> tuple[list[QueueError | None], bool]:
        """Per-token errors, and whether anything was sent (then a barrier is due)."""
        what = "ack" if requeue is None else "nack"
        if requeue:
            # The consumer stops first, so that what is given back goes to the queue, not
            # straight back into this driver's prefetch, where closing the consumer would
            # return it once more and count another delivery. The next receive restarts it.
            with contextlib.suppress(Exception):  # a lost channel has no consumer to stop
                await self._stop_consumer()
        taken = self._take(tokens, f"it was {what}ed")
        if requeue is None:
            live = [lease for lease in taken if isinstance(lease, _Lease)]
            try:
                await self._queue_acks(live)
            except Exception as error:  # the channel is gone: none of them was sent
                failed = translated_error(error, f"{what} on {self._names.where}")
                return [failed if isinstance(lease, _Lease) else lease for lease in taken], False
            return [None if isinstance(lease, _Lease) else lease for lease in taken], bool(live)
        errors: list[QueueError | None] = []
        sent = False
        for lease in taken:
            if isinstance(lease, QueueError):
                errors.append(lease)
                continue
            try:
                await lease.message.nack(requeue=requeue)
            except Exception as error:  # reported per entry
                errors.append(translated_error(error, f"{what} on {self._names.where}"))
                continue
            self._settled(lease)
            sent = True
            errors.append(None)
        return errors, sent

    async def _queue_acks(self, leases: Sequence[_Lease]) -> None:
        """Queue the acks of live ``leases`` (all of the current channel) without waiting
        for each to be written: the barrier that follows says when they are in. One
        ``multiple`` ack covers the run that holds every open tag up to it. Frames are
        queued in the order of these awaits, behind any settlement queued before."""
        if not leases:
            return
        channel = leases[0].message.channel
        tags = [_tag_of(lease) for lease in leases]
        top = self._open_tags.cover(tags)
        if top:
            await channel.basic_ack(top, multiple=True, wait=False)
        for tag in tags:
            if tag > top:
                await channel.basic_ack(tag, wait=False)
        self._open_tags.settled(tags)

    async def _nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        """Without a delay: back to the queue (``basic.nack``, requeue). With one: a copy
        through a wait queue. A delivery at ``dead_letter_after`` that the broker would not
        dead-letter itself (a delayed one, or a copy) goes to the dead-letter queue."""
        if not any(delay > 0 or _lease_of(token).prior for token, delay in entries):
            return await self._settle([token for token, _ in entries], True)
        limit = await self._dead_letter_after()
        plans: dict[str, list[int]] = {"requeue": [], "delay": [], "dead": []}
        for index, (token, delay) in enumerate(entries):
            lease = _lease_of(token)
            spent = limit is not None and lease.attempt >= limit
            if spent and (delay > 0 or lease.prior):
                plans["dead"].append(index)
            else:
                plans["delay" if delay > 0 else "requeue"].append(index)
        errors: list[QueueError | None] = [None] * len(entries)

        def record(indexes: list[int], outcomes: list[QueueError | None]) -> None:
            for index, outcome in zip(indexes, outcomes, strict=True):
                errors[index] = outcome

        if plans["requeue"]:
            requeued, _ = await self._send_settlements(
                [entries[index][0] for index in plans["requeue"]], True
            )
            record(plans["requeue"], requeued)
        if plans["delay"]:
            delays = [entries[index][1] for index in plans["delay"]]
            record(plans["delay"], await self._relay(
                [entries[index][0] for index in plans["delay"]], "nack",
                lambda channel, lease, position: self._wait_route(
                    channel, lease, delays[position]
                ),
            ))
        if plans["dead"]:
            record(plans["dead"], await self._to_dead_letters(
                [entries[index][0] for index in plans["dead"]],
                [LIMIT_REASON] * len(plans["dead"]),
            ))
        return await self._confirmed(errors, "nack")

    async def _wait_route(self, channel: AbstractChannel, lease: _Lease, delay: float) -> _Route:
        returning = Returning(self._queue_name, is_topic=False)
        level = level_for(delay)
        name = wait_queue_name(returning, level)
        generation, declared = self._waits
        if generation != self._link.generation:
            declared = set()
            self._waits = (self._link.generation, declared)
        if name not in declared:
            await channel.declare_queue(
                name, durable=True, arguments=wait_queue_arguments(returning, level)
            )
            declared.add(name)
        return name, copy_of(lease.message, {PRIOR_DELIVERIES_HEADER: str(lease.attempt)})

    async def _relay(
        self,
        tokens: Sequence[object],
        doing: str,
        route: Callable[[AbstractChannel, _Lease, int], Awaitable[_Route]],
    ) -> list[QueueError | None]:
        """Publish a copy of each delivery where ``route`` says (confirms awaited together),
        then ack the originals: at least once. ``route`` gets each live delivery with its
        position in ``tokens``. What could not be copied is given back to the queue."""
        where = self._names.where
        taken = self._take(tokens, f"it was {doing}ed")
        live = [(position, lease) for position, lease in enumerate(taken)
                if isinstance(lease, _Lease)]
        try:
            with translate_errors(f"{doing} on {where}"):
                channel = await self._link.channel()
                routes = [await route(channel, lease, position) for position, lease in live]
        except QueueError as error:
            await self._give_back([lease for _, lease in live])
            return [error if isinstance(lease, _Lease) else lease for lease in taken]
        published = await asyncio.gather(
            *(
                channel.default_exchange.publish(message, key, mandatory=True)
                for key, message in routes
            ),
            return_exceptions=True,
        )
        outcomes = iter(published)
        errors: list[QueueError | None] = []
        failed: list[_Lease] = []
        for lease in taken:
            if isinstance(lease, QueueError):
                errors.append(lease)
                continue
            outcome = next(outcomes)
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                failed.append(lease)
                errors.append(translated_error(outcome, f"{doing} on {where}"))
                continue
            try:
                await lease.message.ack()
            except Exception as error:  # reported per entry
                errors.append(translated_error(error, f"{doing} on {where}"))
                continue
            self._settled(lease)
            errors.append(None)
        await self._give_back(failed)
        return errors

    async def _to_dead_letters(
        self, tokens: Sequence[object], reasons: Sequence[str]
    ) -> list[QueueError | None]:
        dead_queue = self._names.dead_letter_queue
        declared = False

        async def route(channel: AbstractChannel, lease: _Lease, position: int) -> _Route:
            nonlocal declared
            if not declared:
                await _declare_dead_letter_queue(channel, dead_queue)
                declared = True
            return dead_queue, copy_of(lease.message, {DEAD_LETTER_REASON: reasons[position]})

        return await self._relay(tokens, "dead-letter", route)

    async def _dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        errors = await self._to_dead_letters(
            [token for token, _ in entries], [reason for _, reason in entries]
        )
        return await self._confirmed(errors, "dead-letter")

    async def _confirmed(self, errors: list[QueueError | None], what: str) -> BatchErrors:
        barrier = await self._barrier(what)
        if barrier is not None:
            errors = [barrier if error is None else error for error in errors]
        return _outcome(errors)

    async def _barrier(self, what: str) -> QueueError | None:
        channel = self._link.current()
        try:
            if channel is None:
                raise ConnectionError("channel closed before the broker confirmed")
            await channel.set_qos(prefetch_count=self._prefetch)
        except Exception as error:  # the whole batch is in doubt
            return translated_error(error, f"{what} on {self._names.where}")
        return None

    async def _extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        out: list[float | QueueError] = []
        loop = asyncio.get_running_loop()
        for token, seconds in entries:
            lease = self._live(token)
            if isinstance(lease, QueueError):
                out.append(lease)
                continue
            deadline = time.monotonic() + seconds
            if lease.timer is not None:
                lease.timer.cancel()
            lease.timer = loop.call_at(_loop_time(deadline), self._expire, lease)
            out.append(deadline)
        return out

    async def _give_back(self, leases: Sequence[_Lease]) -> None:
        """Requeue deliveries whose settlement could not be done: they were taken off
        their lease timers, so nothing else would."""
        for lease in leases:
            await self._requeue_quietly(lease)

    async def _requeue_quietly(self, lease: _Lease) -> None:
        # A failure means the channel went: the broker requeued the message anyway.
        with contextlib.suppress(Exception):
            await lease.message.nack(requeue=True)
            self._settled(lease)

    def _settled(self, lease: _Lease) -> None:
        """Its settlement frame is queued: a later ``multiple`` ack may pass over it."""
        if lease.generation == self._link.generation:
            self._open_tags.settled((_tag_of(lease),))

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stop_consumer()
        for lease in list(self._leases):
            self._end(lease, "the consumer closed")
        self._buffer.clear()
        # Closing the connection gives back every unsettled delivery.
        await self._link.close()

    def _interrupt(self) -> None:
        self._interrupted += 1
        if self._arrived is not None:
            self._arrived.set()

    # -- the driver interface: sync calls and their async twins -------------------------

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        return self._loop.run(self._receive(max_messages, wait))

    async def areceive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        return await self._loop.arun(self._receive(max_messages, wait))

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        return self._loop.run(self._settle(tokens, None))

    async def aack(self, tokens: Sequence[object]) -> BatchErrors:
        return await self._loop.arun(self._settle(tokens, None))

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return self._loop.run(self._nack(entries))

    async def anack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return await self._loop.arun(self._nack(entries))

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        return self._loop.run(self._settle(tokens, True))

    async def arelease(self, tokens: Sequence[object]) -> BatchErrors:
        return await self._loop.arun(self._settle(tokens, True))

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        return self._loop.run(self._extend(entries))

    async def aextend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        return await self._loop.arun(self._extend(entries))

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        return self._loop.run(self._dead_letter(entries))

    async def adead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        return await self._loop.arun(self._dead_letter(entries))

    def interrupt_receives(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._interrupt)

    def close(self) -> None:
        self._loop.run(self._close())

    async def aclose(self) -> None:
        await self._loop.arun(self._close())


def _outcome(errors: list[QueueError | None]) -> BatchErrors:
    return None if all(error is None for error in errors) else errors


def _lease_of(token_or_delivery: object) -> _Lease:
    token = getattr(token_or_delivery, "token", token_or_delivery)
    assert isinstance(token, _Lease)
    return token


def _tag_of(lease: _Lease) -> int:
    tag = lease.message.delivery_tag
    assert tag is not None  # consumed with acks: every delivery has one
    return tag


def _loop_time(monotonic_deadline: float) -> float:
    """asyncio's default loop clock is time.monotonic(); say so where it is relied on."""
    return monotonic_deadline


async def _declare_dead_letter_queue(channel: AbstractChannel, name: str) -> None:
    await channel.declare_queue(name, durable=True, arguments=queue_arguments(None, None))
