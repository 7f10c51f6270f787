"""Hooks around the processing of each message (logging, tracing, idempotency keys)."""

from __future__ import annotations

from dataclasses import dataclass

from .._received import AsyncReceivedMessage, ReceivedMessage
from .._settlement import Settlement

__all__ = ["Defer", "Duplicate", "Middleware", "Outcome", "Skip"]

AnyMessage = ReceivedMessage | AsyncReceivedMessage


class Skip(Exception):
    """Raise from :meth:`Middleware.before_process` to settle the message as done
    (acked) without running the handler: e.g. an idempotency key seen before."""


class Duplicate(Skip):
    """A :class:`Skip` because the message was processed before (counted as
    ``skipped`` and as the ``duplicates`` event)."""


class Defer(Exception):
    """Raise from :meth:`Middleware.before_process` to give the message back for
    another delivery after ``delay`` seconds without running the handler and without
    counting a failure (no attempt is charged by the worker's policy; the provider
    still counts the delivery): e.g. another copy of it is being processed now."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"deferred for {delay:g}s")
        self.delay = delay


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the processing of one message ended, as :meth:`Middleware.after_process` sees it."""

    #: The exception the handler (or a ``before_process`` hook) raised, else None.
    error: BaseException | None
    #: ``Settlement.ACK``, ``NACK`` or ``DEAD_LETTER`` (equal to ``"ack"``, ``"nack"``,
    #: ``"dead_letter"``); None when nothing settled it (a settlement refused or the
    #: consumer closed): the lease then runs out.
    settlement: Settlement | None
    #: True when the handler settled the message itself.
    by_handler: bool
    #: True when a ``before_process`` hook raised :class:`Skip`.
    skipped: bool
    #: Seconds from ``before_process`` to the settlement.
    duration: float
    #: ``nack`` delay in seconds or ``dead_letter`` reason, when there is one.
    detail: float | str | None = None
    #: True when a ``before_process`` hook raised :class:`Defer` (the message was nacked).
    deferred: bool = False


class Middleware:
    """Subclass and override what you need; register with ``App(middleware=[...])``.

    Hooks run in the thread (plain handlers) or task (coroutine handlers) that runs
    the handler, so context variables set in ``before_process`` are visible to the
    handler and to ``after_process``. Keep them quick: they hold a handler slot.
    ``before_process`` hooks run in registration order, ``after_process`` hooks in
    reverse order.
    """

    def before_process(self, message: AnyMessage, source: str) -> None:
        """Before the handler. Raise :class:`Skip` to ack without running it, or
        :class:`Defer` to give it back for later; any other exception counts as a
        handler failure (retried or dead-lettered)."""

    def before_ack(self, message: AnyMessage, source: str) -> None:
        """After the handler succeeded, right before its message is acked (by the worker,
        or by the handler's own ``ack``): the last point at which the message is known
        to be done but may still be delivered again. Exceptions are logged and the ack
        goes ahead: the handler's work is done either way."""

    def after_process(self, message: AnyMessage, source: str, outcome: Outcome) -> None:
        """After the message was settled (or left to its lease). Exceptions are logged."""
