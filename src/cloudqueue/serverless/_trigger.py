"""What every adapter shares: run a handler on deliveries a trigger hands over, and
learn per message whether it succeeded.

A trigger settles by its own rules (a Lambda partial-failure list, an exception for the
Functions host, an HTTP status for Pub/Sub push), so an adapter message settles into a
:class:`~cloudqueue.worker._handler.SettlementRecord` that records the outcome and refuses,
with :class:`~cloudqueue.Unsupported`, what the trigger cannot express.

Claim checks are resolved here too, by every public entry point before any handler runs
and before any process span starts: as the consumer resolves at hand-out, before the
worker's span, so a span measures the handler, and a payload that cannot be read shows
on it as the handler's ``PayloadUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._settlement import Settlement
from .._telemetry import active
from ..driver import Delivery
from ..errors import DecodeError, InvalidArgument, Unsupported, scrub
from ..offload._consuming import PayloadResolver
from ..worker._handler import SettlementRecord, is_async_handler, message_for
from ..worker._policy import failure_summary
from ..worker._typed import bind, undecodable_reason
from ._tracing import Headers, TraceSource

if TYPE_CHECKING:
    from .._telemetry._process import ProcessScope, ProcessTracer

__all__ = ["MalformedEvent", "Result", "TriggerRunner"]

log = logging.getLogger("cloudqueue.serverless")


class MalformedEvent(InvalidArgument):
    """The event does not have the shape the trigger documents; nothing was processed."""


class HandlerFailed(Exception):
    """Raised to a trigger that retries a whole invocation (Azure Functions abandons the
    message(s); Lambda retries an SNS event): the handler failed for these message ids.
    The first handler error is the ``__cause__``."""

    def __init__(self, message_ids: list[str]) -> None:
        super().__init__(f"handler failed for {len(message_ids)} message(s): {', '.join(message_ids)}")
        self.message_ids = message_ids


@dataclass(frozen=True, slots=True)
class Result:
    """How one message ended: ``ok`` True when the trigger must report it done."""

    delivery: Delivery
    ok: bool
    error: BaseException | None = None


@dataclass(slots=True)
class _Attempt:
    """One run of the handler: the message it gets, and how the run ended."""

    message: Any
    error: BaseException | None = None
    result: Result | None = None


class TriggerRunner:
    """Runs one handler for a trigger named ``trigger``.

    ``refusals`` maps a settlement kind (``nack``, ``extend``, ``dead_letter``) the
    trigger cannot carry out to the explanation raised as Unsupported; ``nack`` with a
    delay is always refused (``nack_delay_refusal``), ``nack()`` means "report failed".
    ``trace`` says what the process spans carry (when OpenTelemetry is on).
    ``payloads`` resolves the claim checks among the deliveries before the handler
    runs (see :mod:`._offload`); every public ``run*``, ``ordered`` and ``gather``
    applies it, so no adapter can hand a pointer over as a body.
    """

    def __init__(
        self,
        handler: Callable[..., Any],
        trigger: str,
        refusals: Mapping[Settlement, str],
        nack_delay_refusal: str,
        trace: TraceSource,
        concurrency: int = 1,
        *,
        payloads: PayloadResolver,
    ) -> None:
        if not callable(handler):
            raise InvalidArgument(f"handler must be callable, not {handler!r}")
        if type(concurrency) is not int or concurrency < 1:
            raise InvalidArgument(f"concurrency must be a positive int, not {concurrency!r}")
        self.is_async = is_async_handler(handler)
        #: The handler as a function of the message (decoding first for a typed handler).
        self.handler = bind(handler, self.is_async)
        self.trigger = trigger
        self.refusals = dict(refusals)
        self.nack_delay_refusal = nack_delay_refusal
        self.concurrency = concurrency
        self.trace = trace
        self.payloads = payloads
        #: When on, process tracers per destination.
        self._telemetry = active()
        self._tracers: dict[tuple[tuple[str, str], ...], ProcessTracer] = {}

    def _forward(self, delivery: Delivery, kind: Settlement, argument: Any) -> None:
        refusal = self.refusals.get(kind)
        if refusal is not None:
            raise Unsupported(f"{self.trigger}: {refusal}")
        if kind is Settlement.NACK and argument:
            raise Unsupported(f"{self.trigger}: {self.nack_delay_refusal}")

    def _judge(self, delivery: Delivery, settlement: SettlementRecord, error: BaseException | None) -> Result:
        if settlement.kind is Settlement.ACK:
            ok = True  # the handler said so, even if it raised afterwards
        elif settlement.kind is Settlement.NACK:
            ok = False
        else:
            ok = error is None
        if isinstance(error, DecodeError):
            # No trigger can dead-letter (see each adapter's refusals): it fails, and the
            # queue's or subscription's own redrive policy takes it out of circulation.
            log.error(
                "%s: message %s cannot be processed (%s); reported failed for the platform's "
                "redrive policy to dead-letter", self.trigger, delivery.id, undecodable_reason(error),
            )
        elif error is not None:
            log.warning(
                "%s: message %s failed (attempt %s): %s", self.trigger, delivery.id,
                delivery.delivery_attempt, failure_summary(error), exc_info=error,
            )
        return Result(delivery, ok, error)

    # -- process spans -------------------------------------------------------------

    def _begin(self, delivery: Delivery, parent: Headers | None) -> ProcessScope | None:
        if self._telemetry is None:
            return None
        described = self.trace.describe(delivery)
        key = tuple(sorted(described.items()))
        tracer = self._tracers.get(key)
        if tracer is None:
            from .._telemetry._process import ProcessTracer  # imports opentelemetry: only when on

            attributes = {"messaging.system": self.trace.system, **described}
            tracer = self._tracers[key] = ProcessTracer(
                self._telemetry, described.get("messaging.destination.name"), attributes,
                count_consumed=True,
            )
        return tracer.begin((delivery,), parent=parent, links=self.trace.links_for(delivery))

    @staticmethod
    def _end(scope: ProcessScope, result: Result | None, settlement: SettlementRecord,
             error: BaseException | None) -> None:
        if error is not None:
            scope.failed(error)
        if result is not None and not result.ok:
            # The trigger redelivers by its own policy (visibility timeout, abandon, backoff).
            reason = scrub(failure_summary(error)) if error is not None else "nacked by the handler"
            scope.retried(None, reason)
        scope.end()

    # -- one message ---------------------------------------------------------------

    def run_sync(self, delivery: Delivery, parent: Headers | None = None) -> Result:
        """Run the handler on one delivery; ``parent``: W3C headers of the request
        that brought it (see :meth:`ProcessTracer.begin`)."""
        self.payloads.resolve((delivery,))
        return self._run_sync(delivery, parent)

    async def run_async(self, delivery: Delivery, parent: Headers | None = None) -> Result:
        await self.payloads.aresolve((delivery,))
        return await self._run_async(delivery, parent)

    def _run_sync(self, delivery: Delivery, parent: Headers | None = None) -> Result:
        with self._attempt(delivery, parent, asynchronous=False) as attempt:
            self.handler(attempt.message)
        assert attempt.result is not None  # set whenever the block ends without raising
        return attempt.result

    async def _run_async(self, delivery: Delivery, parent: Headers | None = None) -> Result:
        with self._attempt(delivery, parent, asynchronous=True) as attempt:
            await self.handler(attempt.message)
        assert attempt.result is not None
        return attempt.result

    @contextlib.contextmanager
    def _attempt(
        self, delivery: Delivery, parent: Headers | None, *, asynchronous: bool
    ) -> Iterator[_Attempt]:
        """What running the handler once involves around the call itself, for the sync
        and async paths alike: the process span, judging the outcome (a handler's
        Exception becomes the Result, anything else propagates) and ending the span."""
        settlement = SettlementRecord(self._forward)
        attempt = _Attempt(message_for(delivery, settlement, asynchronous))
        scope = self._begin(delivery, parent)
        try:
            try:
                yield attempt
            except Exception as exc:  # the handler's failure: judged, not raised
                attempt.error = exc
            except BaseException as exc:
                attempt.error = exc
                raise
            attempt.result = self._judge(delivery, settlement, attempt.error)
        finally:
            if scope is not None:
                self._end(scope, attempt.result, settlement, attempt.error)

    async def run_one_async(self, delivery: Delivery, parent: Headers | None = None) -> Result:
        """One message from async code (a coroutine handler awaited, a plain one in a thread)."""
        await self.payloads.aresolve((delivery,))
        return await self._run_one_async(delivery, parent)

    async def _run_one_async(self, delivery: Delivery, parent: Headers | None = None) -> Result:
        if self.is_async:
            return await self._run_async(delivery, parent)
        return await asyncio.to_thread(self._run_sync, delivery, parent)

    # -- batches ---------------------------------------------------------------------
    # A batch's payloads are fetched together first (a few at a time), so they are all
    # in memory while its handlers run: the trigger's batch size bounds that memory.

    def run_batch(self, deliveries: Sequence[Delivery], *, in_order: bool) -> list[Result]:
        """Results in order. ``in_order`` (FIFO): one at a time, and after the first
        failure the rest are not run and reported failed (their order must hold)."""
        self.payloads.resolve(deliveries)
        if in_order:
            return asyncio.run(self._ordered(deliveries))
        if self.is_async:
            return asyncio.run(self._gather(deliveries))
        if self.concurrency == 1 or len(deliveries) < 2:
            return [self._run_sync(delivery) for delivery in deliveries]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(deliveries))) as pool:
            return list(pool.map(self._run_sync, deliveries))

    async def ordered(self, deliveries: Sequence[Delivery]) -> list[Result]:
        """:meth:`run_batch` ``in_order`` for async code."""
        await self.payloads.aresolve(deliveries)
        return await self._ordered(deliveries)

    async def gather(self, deliveries: Sequence[Delivery]) -> list[Result]:
        """:meth:`run_batch` for async code, the handler being a coroutine function."""
        await self.payloads.aresolve(deliveries)
        return await self._gather(deliveries)

    async def _ordered(self, deliveries: Sequence[Delivery]) -> list[Result]:
        results: list[Result] = []
        for index, delivery in enumerate(deliveries):
            result = await self._run_one_async(delivery)
            results.append(result)
            if not result.ok:
                results.extend(Result(later, False) for later in deliveries[index + 1 :])
                break
        return results

    async def _gather(self, deliveries: Sequence[Delivery]) -> list[Result]:
        limit = asyncio.Semaphore(self.concurrency if self.concurrency > 1 else len(deliveries) or 1)

        async def bounded(delivery: Delivery) -> Result:
            async with limit:
                return await self._run_async(delivery)

        return list(await asyncio.gather(*(bounded(delivery) for delivery in deliveries)))
