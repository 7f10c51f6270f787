"""Processing one message: middleware, the handler, the settlement and the counters.

Written once for both kinds of handler: only the call of the handler itself differs
(:meth:`Processor.run_sync` in a lane thread, :meth:`Processor.run_async` in a lane task).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._settlement import Settlement
from ..driver import Capabilities, Delivery
from ..errors import DecodeError, QueueError, scrub
from ._breaker import Breaker
from ._counters import Counters, Tally
from ._handler import Forward, SettlementRecord, message_type
from ._middleware import AnyMessage, Defer, Duplicate, Middleware, Outcome, Skip
from ._policy import Decision, DoNotRetry, FailurePolicy, failure_summary
from ._typed import bind, undecodable_reason

if TYPE_CHECKING:
    from .._telemetry._process import ProcessScope, ProcessTracer

__all__ = ["Processor"]

log = logging.getLogger("cloudqueue.worker")

# Module constants: a lookup on the enum class is slow in CPython 3.11.
_ACK, _NACK, _DEAD_LETTER = Settlement.ACK, Settlement.NACK, Settlement.DEAD_LETTER


class Processor:
    """Runs a handler on deliveries from one consumer and settles them."""

    def __init__(
        self,
        handler: Callable[..., Any],
        *,
        is_async: bool,
        settle: Forward,
        capabilities: Capabilities,
        policy: FailurePolicy,
        middleware: Sequence[Middleware],
        source: str,
        tracer: ProcessTracer | None = None,
        breaker: Breaker | None = None,
        counters: Counters | None = None,
    ) -> None:
        #: The handler as a function of the message (decoding first for a typed handler).
        self.handler = bind(handler, is_async)
        self.is_async = is_async
        self.settle = settle
        self.capabilities = capabilities
        self.policy = policy
        self.middleware = tuple(middleware)
        self.source = source
        #: Process spans and metrics; None when telemetry is off (one compare per message).
        self.tracer = tracer
        #: ``tracer`` while an SDK records, else None: looked at by :meth:`look_at_telemetry`
        #: once per receive, as asking per message (a clock read while only the API is
        #: installed) cost a no-op handler's worker about a tenth of its throughput.
        self.live_tracer: ProcessTracer | None = None
        #: Whether an SDK records (``_otel.LIVE``), imported here once: an import
        #: statement per receive was 9% of the plain-handler lanes' sampled time (py-spy)
        #: when they received 8 messages at a time.
        self.live: Callable[[], bool] | None = None
        if tracer is not None:
            from .._telemetry._otel import LIVE  # opentelemetry is imported already: tracer is set

            self.live = LIVE
        self.look_at_telemetry()
        self.message_type = message_type(is_async)  # looked up once, not per message
        #: Told each handler run's outcome; None without a circuit breaker.
        self.breaker = breaker
        #: Handler exceptions that condemn one message rather than the downstream system:
        #: they do not count against the breaker.
        self.condemning: tuple[type[BaseException], ...] = (
            DoNotRetry, DecodeError, *policy.dead_letter_on,
        )
        self.counters = counters if counters is not None else Counters()
        #: No hooks and no breaker: a handler that returned without settling is simply
        #: acked, written out in the run methods (_finish's checks cost as much as the ack).
        self.plain = not self.middleware and breaker is None

    def look_at_telemetry(self) -> None:
        """Take up (or drop) process spans as an SDK is installed: lanes call this
        before handling what a receive brought. The answer is the same throttled one
        :meth:`ProcessTracer.begin` would get (a no is looked at again once a second)."""
        live = self.live
        if live is not None:
            self.live_tracer = self.tracer if live() else None

    # -- the two ways of calling a handler ------------------------------------------
    #
    # Each runs inline in a lane (a long-lived task or thread) and counts into the
    # lane's own tally. Without middleware the clock is not read and no Outcome is
    # built: those were a measurable share of a no-op handler's cost.

    def run_sync(self, delivery: Delivery, tally: Tally) -> None:
        settlement = SettlementRecord(self.settle)
        message = self.message_type(delivery, settlement)
        if self.middleware:
            settlement.before_ack = functools.partial(self._before_ack, message)
        started = time.monotonic() if self.middleware else 0.0
        error: BaseException | None = None
        instead: bool | Skip | Defer = False  # what a before_process hook asked for
        tracer = self.live_tracer
        scope = tracer.begin((delivery,)) if tracer is not None else None
        tally.in_flight = 1
        try:
            try:
                if self.middleware:
                    instead = self._before(message)
                if not instead:
                    self.handler(message)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                error = exc  # for the span only: the message is left to its lease, not counted
                raise
            if error is None and settlement.kind is None and self.plain:
                self._ack(delivery, settlement)
                tally.processed += 1
            else:
                self._finish(delivery, message, settlement, error, instead, started, tally)
        finally:
            tally.in_flight = 0  # also when a BaseException ends the lane: its message is left to its lease
            if scope is not None:
                _trace_outcome(scope, error, settlement, instead)

    async def run_async(self, delivery: Delivery, tally: Tally) -> None:
        settlement = SettlementRecord(self.settle)
        message = self.message_type(delivery, settlement)
        if self.middleware:
            settlement.before_ack = functools.partial(self._before_ack, message)
        started = time.monotonic() if self.middleware else 0.0
        error: BaseException | None = None
        instead: bool | Skip | Defer = False  # what a before_process hook asked for
        tracer = self.live_tracer
        scope = tracer.begin((delivery,)) if tracer is not None else None
        tally.in_flight = 1
        try:
            try:
                if self.middleware:
                    instead = self._before(message)
                if not instead:
                    await self.handler(message)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                error = exc  # for the span only: the message is left to its lease, not counted
                raise
            # CancelledError (forced shutdown) passes through: the message is left
            # unsettled and comes back when its lease ends.
            if error is None and settlement.kind is None and self.plain:
                self._ack(delivery, settlement)
                tally.processed += 1
            else:
                self._finish(delivery, message, settlement, error, instead, started, tally)
        finally:
            tally.in_flight = 0
            if scope is not None:
                _trace_outcome(scope, error, settlement, instead)

    async def run_async_plain(self, delivery: Delivery, tally: Tally) -> None:
        """:meth:`run_async` for a :attr:`plain` processor while no span is recorded:
        the same outcome without the steps that cannot apply (a sixth of its cost)."""
        if self.live_tracer is not None:
            return await self.run_async(delivery, tally)
        settle = self.settle
        settlement = SettlementRecord(settle)
        message = self.message_type(delivery, settlement)
        tally.in_flight = 1
        try:
            await self.handler(message)
        except Exception as error:
            self._finish(delivery, message, settlement, error, False, 0.0, tally)
        else:
            if settlement.kind is None:
                # _ack written out (a call frame per message), without recording the
                # ack on the settlement: nothing reads it on this path.
                try:
                    settle(delivery, _ACK, None)
                except QueueError as exc:
                    log.warning("could not settle message %s from %s: %s", delivery.id, self.source, exc)
                tally.processed += 1
            else:
                self._finish(delivery, message, settlement, None, False, 0.0, tally)
        finally:
            tally.in_flight = 0
        return None

    # -- shared steps --------------------------------------------------------------

    def _before(self, message: AnyMessage) -> bool | Skip | Defer:
        """Run ``before_process`` hooks; the :class:`Skip` or :class:`Defer` one raised
        to ack the message, or to give it back for later, without running the handler."""
        for middleware in self.middleware:
            try:
                middleware.before_process(message, self.source)
            except (Skip, Defer) as instead:
                return instead
        return False

    def _before_ack(self, message: AnyMessage) -> None:
        for middleware in self.middleware:
            try:
                middleware.before_ack(message, self.source)
            except Exception:
                log.exception("before_ack of %r failed; acking anyway", middleware)

    def _ack(self, delivery: Delivery, settlement: SettlementRecord) -> None:
        """Ack for the runtime: the handler returned and settled nothing. Sent without
        the SettlementRecord in between, which only records what the handler settled."""
        try:
            self.settle(delivery, _ACK, None)
        except QueueError as exc:
            # Closed after a forced shutdown, or a refused settlement: the
            # message comes back when its lease ends, so nothing is lost.
            log.warning("could not settle message %s from %s: %s", delivery.id, self.source, exc)
            return
        settlement.kind = _ACK

    def _finish(
        self,
        delivery: Delivery,
        message: AnyMessage,
        settlement: SettlementRecord,
        error: BaseException | None,
        instead: bool | Skip | Defer,
        started: float,
        tally: Tally,
    ) -> None:
        deferred = instead if isinstance(instead, Defer) else None
        skipped = isinstance(instead, Skip)
        if self.breaker is not None and not skipped and deferred is None:
            self.breaker.record(failed=error is not None and not isinstance(error, self.condemning))
        by_handler = settlement.kind is not None
        if not by_handler:
            try:
                if deferred is not None:
                    settlement.settle(delivery, _NACK, self._nack_delay(deferred.delay))
                elif error is None:
                    if self.middleware and not skipped:
                        self._before_ack(message)
                    self.settle(delivery, _ACK, None)  # as _ack, which logs a refusal as below
                    settlement.kind = _ACK
                else:
                    self._settle_for(delivery, settlement, error)
            except QueueError as exc:
                # Closed after a forced shutdown, or a refused settlement: the
                # message comes back when its lease ends, so nothing is lost.
                log.warning("could not settle message %s from %s: %s", delivery.id, self.source, exc)
        kind = settlement.kind
        if deferred is not None:
            self.counters.count_event("deferred")
        elif skipped:
            tally.skipped += 1
            if isinstance(instead, Duplicate):
                self.counters.count_event("duplicates")
        elif error is not None:
            tally.failed += 1
        else:
            tally.processed += 1
        if kind is _NACK:
            tally.retried += 1
        elif kind is _DEAD_LETTER:
            tally.dead_lettered += 1
        if not self.middleware:
            return
        outcome = Outcome(
            error=error,
            settlement=kind,
            by_handler=by_handler,
            skipped=skipped,
            duration=time.monotonic() - started,
            detail=settlement.argument,
            deferred=deferred is not None,
        )
        for middleware in reversed(self.middleware):
            try:
                middleware.after_process(message, self.source, outcome)
            except Exception:
                log.exception("after_process of %r failed", middleware)

    def _nack_delay(self, wanted: float) -> float:
        """``wanted`` as far as the provider can delay a nack (0 where it cannot)."""
        if not self.capabilities.nack_delay:
            return 0.0
        return min(wanted, self.capabilities.limits.max_nack_delay or 0.0)

    def _settle_for(self, delivery: Delivery, settlement: SettlementRecord, error: BaseException) -> None:
        attempt = delivery.delivery_attempt
        if isinstance(error, DecodeError):
            # The same bytes fail the same way on every attempt: no retries burned.
            decision = Decision("dead_letter", reason=undecodable_reason(error))
        else:
            decision = self.policy.decide(error, attempt, self.capabilities)
        summary = scrub(failure_summary(error))
        breaker = self.breaker
        if (decision.action == "dead_letter" and breaker is not None and breaker.is_open
                and not isinstance(error, self.condemning)):
            # The circuit blames the downstream system, not this message: keep it for
            # after the cool-down instead of spending it on a dead letter.
            delay = self._nack_delay(breaker.config.cool_down)
            log.warning(
                "message %s from %s failed (attempt %s) while the circuit is open; "
                "retrying in %.1fs instead of dead-lettering: %s",
                delivery.id, self.source, attempt, delay, summary, exc_info=error,
            )
            settlement.settle(delivery, _NACK, delay)
            return
        if decision.action == "dead_letter" and not self.capabilities.dead_letter:
            # Nothing to move it to: give it back and let the provider's own redrive
            # setting (if any) take it out of circulation.
            log.error(
                "%s cannot dead-letter; message %s failed for good (%s) and is nacked instead",
                self.source, delivery.id, summary,
            )
            delay = (self.capabilities.limits.max_nack_delay or 0.0) if self.capabilities.nack_delay else 0.0
            settlement.settle(delivery, _NACK, min(delay, self.policy.max_delay))
            return
        if decision.action == "dead_letter":
            log.warning(
                "message %s from %s dead-lettered: %s", delivery.id, self.source, scrub(decision.reason),
                exc_info=error,
            )
            limit = self.capabilities.limits.max_attribute_value_bytes
            settlement.settle(delivery, _DEAD_LETTER, _carried(scrub(decision.reason), limit))
            return
        log.warning(
            "message %s from %s failed (attempt %s), retrying in %.1fs: %s",
            delivery.id, self.source, attempt, decision.delay, summary, exc_info=error,
        )
        settlement.settle(delivery, _NACK, decision.delay)


def _trace_outcome(
    scope: ProcessScope, error: BaseException | None, settlement: SettlementRecord,
    instead: bool | Skip | Defer,
) -> None:
    """Record on the process span what became of the message, then end the span
    (after the ``after_process`` hooks, so that they run inside it too). The other
    outcomes reach the metrics through the tallies (see ``_process._Instruments``)."""
    if error is not None:
        scope.failed(error)
    kind = settlement.kind
    if kind is _NACK:
        if error is not None:
            reason = scrub(failure_summary(error))
        else:
            reason = f"deferred: {instead}" if isinstance(instead, Defer) else "nacked by the handler"
        scope.retried(float(settlement.argument or 0.0), reason)
    elif kind is _DEAD_LETTER:
        scope.dead_lettered(str(settlement.argument or ""))
    # As the tallies count: a handler's Exception, not a cancellation or SystemExit.
    scope.end(count_failure=isinstance(error, Exception) and instead is False)


def _carried(reason: str, limit: int) -> str:
    """``reason`` as a dead-letter reason every provider can carry: valid UTF-8 (an
    exception's text may hold lone surrogates) within ``limit`` bytes, cut with "…"."""
    data = reason.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data.decode()
    return data[: max(0, limit - 3)].decode("utf-8", "ignore") + "…"
