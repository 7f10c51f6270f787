"""The redrive engine: dead letters back to their source (or elsewhere), send first,
then ack, pipelined, in asyncio; the blocking ``cloudqueue.ops.redrive`` runs it too.

One run: first, where the provider can and the options allow, move dead letters in
place (see :mod:`._native`); then, for what is left, receive dead letters with the
portable consumer (which keeps their leases), sort each one (moves, skipped by
``where``, refused by the target), send the movers in batches of the target's
``max_send_batch`` with several batches in flight, and ack each dead letter only
once its send is confirmed. Everything not moved is *held*
until the run ends and only then given back, so it is not received again and again
within the run. The run ends when ``limit`` is reached, when ``MAX_HELD`` messages
are held, or when the dead-letter queue gives nothing for ``QUIET`` seconds while no
send is under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import aio
from .._message import Message
from .._options import ConsumerOptions, ProducerOptions
from .._received import AsyncReceivedMessage
from .._registry import resolve
from .._sdk import SdkObjects
from .._url import Url
from ..driver import (
    Capabilities,
    DeadLetterFacts,
    Provider,
    RedriveStamp,
    SubscriptionDriver,
    TopicDriver,
)
from ..errors import InvalidArgument, QueueError, SendBatchError
from ..filters import Filter
from ._checks import check_flag, check_limit, check_progress, check_rate, check_where
from ._native import can_move_in_place, move_in_place
from ._pacing import TokenBucket, chunk_for_rate
from ._resend import Matcher, matcher, redrive_time, resend_message, validate_alone
from ._types import PeekedMessage, RedriveFailure, RedriveReport

__all__ = ["MAX_HELD", "QUIET", "SENDS_IN_FLIGHT", "give_back", "redrive"]

log = logging.getLogger("cloudqueue")

#: Dead letters a run holds back at most (skipped by ``where``, refused, or beyond
#: ``limit``); past it the run ends, and a second run gets to the rest.
MAX_HELD = 10_000
#: Seconds of receiving nothing (with no send under way) that end a run.
QUIET = 2.0
#: Send batches under way at once: as many as a producer's default
#: (``max_concurrent_batches``), so a redrive's sends are as parallel as the batched
#: send it is measured against; they hide each round trip behind the next receive.
SENDS_IN_FLIGHT = 8
#: One receive waits at most this long, so the quiet clock is read often.
_RECEIVE_WAIT = 0.5

_UTC = datetime.UTC

#: A dead letter on its way: the received message, what is sent for it, its reason.
_Mover = tuple[AsyncReceivedMessage, Message, str]


async def redrive(
    dead_letter_url: str,
    to: str | None = None,
    *,
    limit: int | None = None,
    rate: float | None = None,
    where: Filter | Callable[[PeekedMessage], bool] | None = None,
    dry_run: bool = False,
    progress: Callable[[RedriveReport], None] | None = None,
    sdk: SdkObjects | None = None,
) -> RedriveReport:
    """Move the dead letters of ``dead_letter_url`` back to where they came from, or to
    ``to``; see :func:`cloudqueue.ops.redrive`."""
    limit = check_limit(limit)
    rate = check_rate(rate)
    check_where(where)
    dry_run = check_flag(dry_run, "dry_run")
    check_progress(progress)
    if to is not None and not isinstance(to, str):
        raise InvalidArgument(f"to must be None or a destination URL (str), not {type(to).__name__}")
    provider, source = resolve(dead_letter_url, sdk)
    target_provider, target = await _target(provider, source, to)
    driver = await asyncio.to_thread(target_provider.open_redrive_target, target)
    run = _Run(
        provider=provider, source=source, target=target, driver=driver,
        settings=_Settings(limit, rate, matcher(where), dry_run, progress),
    )
    return await run.run()


async def _target(provider: Provider, source: Url, to: str | None) -> tuple[Provider, Url]:
    """Where dead letters go: ``to``, or the source the provider names. ``to`` may not be
    the dead-letter queue itself, nor any dead-letter destination (the messages would
    land among dead letters again)."""
    if to is None:
        return provider, await asyncio.to_thread(provider.redrive_source, source)
    # The SDK objects serve the target too: a redrive stays within one cloud's account.
    target_provider, target = resolve(to, source.sdk)
    if target.unsafe_str() == source.unsafe_str():
        raise InvalidArgument(f"to= names the dead-letter queue being redriven ({source}): "
                              "pass the queue the messages should go back to")
    try:
        feeds = await asyncio.to_thread(target_provider.redrive_source, target)
    except QueueError:  # not a dead-letter destination, or the provider cannot tell
        return target_provider, target
    raise InvalidArgument(
        f"to= names {target}, which is itself a dead-letter destination (of {feeds}): "
        "redriven messages would land among dead letters again; pass the queue or "
        "subscription they should be processed from"
    )


@dataclass(frozen=True, slots=True)
class _Settings:
    limit: int | None
    rate: float | None
    where: Matcher | None
    dry_run: bool
    progress: Callable[[RedriveReport], None] | None


class _Run:
    def __init__(
        self, *, provider: Provider, source: Url, target: Url, driver: TopicDriver,
        settings: _Settings,
    ) -> None:
        self.provider = provider
        self.source = source
        self.target = target
        self.driver = driver
        self.settings = settings
        self.report = RedriveReport(source=str(source), target=str(target), dry_run=settings.dry_run)
        self.capabilities: Capabilities = driver.capabilities
        limits = self.capabilities.limits
        self.chunk = chunk_for_rate(settings.rate, limits.max_send_batch)
        self.bucket = None if settings.rate is None else TokenBucket(settings.rate)
        #: Received and not acked, in the order received (a dict: ordered, O(1) removal):
        #: given back when the run ends, whatever ends it.
        self.unsettled: dict[AsyncReceivedMessage, None] = {}
        #: Dead letters this run sent: one that comes back (its ack failed, its lease
        #: ended) is held, not sent a second time, or the run could go round for ever.
        #: id -> its reason as counted in ``reasons``; None once it came back.
        self.sent_ids: dict[str, str | None] = {}
        #: Held back for the whole run (skipped, refused, beyond the limit).
        self.held = 0
        #: Moves under way: sent or being sent, not yet counted in ``moved``.
        self.sending = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(SENDS_IN_FLIGHT)
        self.started = time.monotonic()
        self.failure: BaseException | None = None

    # -- the run -------------------------------------------------------------------

    async def run(self) -> RedriveReport:
        try:
            driver = await asyncio.to_thread(self.provider.open_subscription, self.source)
        except BaseException:
            await self.driver.aclose()  # the target's, opened first
            raise
        try:
            await self._move_in_place(driver)
        except BaseException:
            await self._close_drivers(driver)
            raise
        if self._limit_reached():  # all moved in place: no consumer or producer needed
            await self._close_drivers(driver)
            self.report.elapsed = time.monotonic() - self.started
            return self.report
        # Room for everything a run may hold, plus the receives and sends under way.
        window = self.chunk * SENDS_IN_FLIGHT + self.capabilities.limits.max_send_batch
        consumer = aio.AsyncConsumer(
            self.source, driver, ConsumerOptions(max_in_flight=MAX_HELD + window)
        )
        producer = None if self.settings.dry_run else aio.AsyncProducer(
            self.target, self.driver, ProducerOptions(max_concurrent_batches=SENDS_IN_FLIGHT)
        )
        try:
            await self._pump(consumer, producer, window)
        finally:
            await self._finish(consumer, producer)
        self.report.elapsed = time.monotonic() - self.started
        return self.report

    async def _move_in_place(self, driver: SubscriptionDriver) -> None:
        """Move what the provider can move in place first, when the run's options let
        a move in place give what the portable run would (see :mod:`._native`)."""
        settings = self.settings
        if settings.where is not None or settings.rate is not None or settings.dry_run:
            return
        if not can_move_in_place(driver, self.driver, self.capabilities, str(self.target)):
            return
        await move_in_place(
            driver, self.driver, batch=driver.capabilities.limits.max_receive_batch,
            limit=settings.limit, stamp=self._stamp, moved=self._moved_in_place,
        )

    def _moved_in_place(self, reasons: list[str | None]) -> None:
        for reason in reasons:
            self._count_moved(reason)
        self._progress()

    async def _close_drivers(self, driver: SubscriptionDriver) -> None:
        try:
            await driver.aclose()
        finally:
            await self.driver.aclose()

    def _stamp(self) -> RedriveStamp:
        capabilities = self.capabilities
        return RedriveStamp(
            redrive_time(datetime.datetime.now(_UTC)), capabilities.limits, capabilities.ordering
        )

    async def _pump(
        self, consumer: aio.AsyncConsumer, producer: aio.AsyncProducer | None, window: int
    ) -> None:
        quiet = 0.0
        while self.failure is None and self.held < MAX_HELD:
            if self._limit_reached():
                if not self.tasks:
                    break
                # A send under way may fail and leave room: wait for it, take no more.
                await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            asked = time.monotonic()
            batch = await consumer.receive(window, wait=_RECEIVE_WAIT)
            if not batch:
                if self.tasks:  # acks under way may free more (the next of a key)
                    await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
                    quiet = 0.0
                    continue
                quiet += time.monotonic() - asked
                if quiet >= QUIET:
                    break
                continue
            quiet = 0.0
            movers = self._sort(batch)
            for start in range(0, len(movers), self.chunk):
                if self.failure is not None:
                    break  # the rest stays unsettled: given back when the run ends
                await self._dispatch(movers[start : start + self.chunk], producer)
            if self.settings.dry_run:
                self._progress()  # a dry run sends nothing: each received batch is one
        if self.tasks:
            await asyncio.wait(self.tasks)
        if self.failure is not None:
            raise self.failure

    def _limit_reached(self) -> bool:
        limit = self.settings.limit
        return limit is not None and self.report.moved + self.sending >= limit

    # -- sorting what came ---------------------------------------------------------

    def _sort(
        self, batch: list[AsyncReceivedMessage]
    ) -> list[_Mover]:
        """Each received dead letter held back or made a mover: ``(received, Message, reason)``."""
        movers: list[_Mover] = []
        stamp = self._stamp()
        report, settings = self.report, self.settings
        for received in batch:
            self.unsettled[received] = None
            delivery = received.delivery
            facts = self._facts(received)
            if delivery.id in self.sent_ids:
                counted = self.sent_ids[delivery.id]
                if counted is not None:  # the first time it comes back
                    # Counted as moved when its ack was queued; it was not removed after all.
                    self._uncount_moved(counted)
                    self.sent_ids[delivery.id] = None
                    report.failures.append(RedriveFailure(
                        delivery.id, "sent, but not removed from the dead-letter queue: its "
                        "ack failed (a later redrive sends it again, which a deduplicating "
                        "target drops)"
                    ))
                self.held += 1
                continue
            limit = settings.limit
            if limit is not None and report.moved + self.sending + len(movers) >= limit:
                self.held += 1  # beyond the limit: given back at the end, not counted
                continue
            if settings.where is not None and not settings.where(PeekedMessage.of(delivery, facts)):
                report.skipped += 1
                self.held += 1
                continue
            try:
                message = resend_message(delivery, facts, self.capabilities, stamp)
            except QueueError as error:
                refusal: QueueError | None = error
            else:
                # A real run lets the producer validate the batch and sorts it out only
                # when something is refused: validating each message twice cost 40% of
                # a redrive on memory.
                refusal = self._refusal(message) if settings.dry_run else None
            if refusal is not None:
                report.failures.append(RedriveFailure(delivery.id, _refused(refusal)))
                self.held += 1
                continue
            if settings.dry_run:
                self._count_moved(facts.reason)
                self.held += 1
                continue
            movers.append((received, message, facts.reason or ""))
        return movers

    def _facts(self, received: AsyncReceivedMessage) -> DeadLetterFacts:
        return self.provider.dead_letter_facts(self.source, received.delivery)

    def _count_moved(self, reason: str | None) -> None:
        self.report.moved += 1
        key = reason or ""
        self.report.reasons[key] = self.report.reasons.get(key, 0) + 1

    def _uncount_moved(self, reason: str) -> None:
        self.report.moved -= 1
        left = self.report.reasons[reason] - 1
        if left:
            self.report.reasons[reason] = left
        else:
            del self.report.reasons[reason]

    # -- sending -------------------------------------------------------------------

    async def _dispatch(
        self, movers: list[_Mover],
        producer: aio.AsyncProducer | None,
    ) -> None:
        assert producer is not None  # dry runs have no movers
        if self.bucket is not None:
            await self.bucket.take(len(movers))
        await self.slots.acquire()
        self.sending += len(movers)
        task = asyncio.get_running_loop().create_task(self._send(movers, producer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(
        self, movers: list[_Mover], producer: aio.AsyncProducer
    ) -> None:
        try:
            outcomes = await self._outcomes([message for _, message, _ in movers], producer)
            for (received, _, reason), outcome in zip(movers, outcomes, strict=True):
                if isinstance(outcome, QueueError):
                    self.report.failures.append(RedriveFailure(received.id, str(outcome)))
                    self.held += 1
                    continue
                self.unsettled.pop(received, None)
                self.sent_ids[received.id] = reason
                try:
                    await received.ack()  # only now: a crash before it duplicates, never loses
                except QueueError as error:  # its lease was lost: it is back in the queue
                    self.report.failures.append(RedriveFailure(
                        received.id, f"sent, but not removed from the dead-letter queue "
                        f"(a later redrive sends it again): {error}"
                    ))
                    continue
                self._count_moved(reason or None)
            self._progress()
        except Exception as error:  # the run stops and gives back what it holds
            if self.failure is None:
                self.failure = error
        finally:
            self.sending -= len(movers)
            self.slots.release()

    async def _outcomes(
        self, messages: list[Message], producer: aio.AsyncProducer
    ) -> list[str | QueueError]:
        """Per message: its id at the target, or why it was not sent. A batch the
        producer refuses before sending (one message over a limit) is sorted out: the
        refused ones fail alone, the others go."""
        try:
            return await _send(messages, producer)
        except QueueError as error:  # refused by validation: nothing of it was sent
            refusals = [self._refusal(message) for message in messages]
            if all(refusal is None for refusal in refusals):
                return [error] * len(messages)  # not a message's fault: the call failed
            valid = [m for m, refusal in zip(messages, refusals, strict=True) if refusal is None]
            try:
                sent = iter(await _send(valid, producer) if valid else [])
            except QueueError as failed:
                sent = iter([failed] * len(valid))
            return [
                next(sent) if refusal is None else InvalidArgument(_refused(refusal))
                for refusal in refusals
            ]

    def _refusal(self, message: Message) -> QueueError | None:
        try:
            validate_alone(message, self.capabilities, self.driver.measure, str(self.target))
        except QueueError as error:
            return error
        return None

    def _progress(self) -> None:
        if self.settings.progress is not None:
            self.report.elapsed = time.monotonic() - self.started
            self.settings.progress(self.report)

    # -- ending --------------------------------------------------------------------

    async def _finish(
        self, consumer: aio.AsyncConsumer, producer: aio.AsyncProducer | None
    ) -> None:
        """Give back what the run held, flush the acks, close both ends; also on errors
        and cancellation (sends under way are cancelled: their dead letters stay)."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        await give_back(list(self.unsettled))
        self.unsettled.clear()
        try:
            await consumer.aclose()
        finally:
            if producer is not None:
                await producer.aclose()
            else:
                with contextlib.suppress(QueueError):
                    await self.driver.aclose()



async def _send(messages: list[Message], producer: aio.AsyncProducer) -> list[str | QueueError]:
    """Ids or per-message errors; raises when the batch was refused or the call failed."""
    try:
        return list(await producer.send_batch(messages))
    except SendBatchError as error:
        return error.results


def _refused(error: QueueError) -> str:
    return f"refused by the target: {error}"


async def give_back(messages: list[AsyncReceivedMessage]) -> None:
    """Make ``messages`` available again, newest first: memory and SQLite put a message
    given back at the head of its queue, so the queue keeps its order."""
    for received in reversed(messages):
        await received.nack()
