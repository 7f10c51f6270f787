"""Counters of a worker: what happened to the messages, readable while it runs."""

from __future__ import annotations

import threading

__all__ = ["EVENTS", "FIELDS", "Counters", "Tally"]

#: Names of the counters, in display order.
FIELDS = ("processed", "failed", "retried", "dead_lettered", "skipped", "in_flight")

#: Rarer events of a handler, counted under a lock (not per lane): circuit breaker
#: state changes, duplicates a middleware acked without running the handler (a
#: :class:`~cloudqueue.worker.Duplicate` skip, also counted as ``skipped``), and
#: deliveries a middleware deferred (:class:`~cloudqueue.worker.Defer`, e.g. another
#: copy was being processed; also counted as ``retried``).
EVENTS = ("circuit_open", "circuit_half_open", "circuit_closed", "duplicates", "deferred")


class Tally:
    """The counts of one processing lane (a task or a thread), written by that lane only.

    One writer per tally is what makes counting lock-free: a lock taken twice per
    message was a measurable share of the worker's per-message cost. Readers sum the
    tallies; each field is a plain int, so a read sees a value some lane really wrote.
    """

    __slots__ = FIELDS

    def __init__(self) -> None:
        self.processed = self.failed = self.retried = 0
        self.dead_lettered = self.skipped = self.in_flight = 0


class Counters:
    """Counts for one handler's source: the sum of its lanes' tallies.

    * ``processed``: the handler returned;
    * ``failed``: the handler (or a ``before_process`` hook) raised;
    * ``retried``: the message was nacked for another delivery (by the runtime or the handler);
    * ``dead_lettered``: the message was dead-lettered (by the runtime or the handler);
    * ``skipped``: a middleware raised ``Skip``: acked without running the handler;
    * ``in_flight``: handlers running now.

    Tallies are kept after their lanes end, so counts survive a restart of the app.
    """

    __slots__ = ("__weakref__", "_events", "_lock", "_tallies")  # weakly held by the telemetry

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the list and the events, not the tallies
        self._tallies: list[Tally] = []
        self._events = dict.fromkeys(EVENTS, 0)

    def tally(self) -> Tally:
        """A new lane's tally, counted from now on."""
        one = Tally()
        with self._lock:
            self._tallies.append(one)
        return one

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            tallies = list(self._tallies)
        # One pass with the fields written out: a generator per field over every lane
        # was a few percent of a busy worker's loop when read every millisecond.
        processed = failed = retried = dead_lettered = skipped = in_flight = 0
        for one in tallies:
            processed += one.processed
            failed += one.failed
            retried += one.retried
            dead_lettered += one.dead_lettered
            skipped += one.skipped
            in_flight += one.in_flight
        return {
            "processed": processed, "failed": failed, "retried": retried,
            "dead_lettered": dead_lettered, "skipped": skipped, "in_flight": in_flight,
        }

    def count_event(self, name: str) -> None:
        """Count one of :data:`EVENTS` (from any thread)."""
        with self._lock:
            self._events[name] += 1

    def events(self) -> dict[str, int]:
        """How often each of :data:`EVENTS` happened (the circuit breaker's
        ``circuit_open`` counts the times it opened, and so on)."""
        with self._lock:
            return dict(self._events)

    def __repr__(self) -> str:
        return "<Counters " + " ".join(f"{k}={v}" for k, v in self.snapshot().items()) + ">"


def total(counters: list[Counters]) -> dict[str, int]:
    """The sum of several sources' counters."""
    sums = dict.fromkeys(FIELDS, 0)
    for one in counters:
        for name, value in one.snapshot().items():
            sums[name] += value
    return sums
