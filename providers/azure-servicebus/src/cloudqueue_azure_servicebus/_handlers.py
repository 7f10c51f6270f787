"""One SDK sender or receiver, opened on first use and reused.

Opening a handler costs about half a second in the SDK, so drivers keep theirs
for their whole life. SDK handlers are not thread-safe: every call goes
through :meth:`Handler.use`, which serialises callers. After a failure the
handler is dropped, so the next call opens a fresh one (recovery after a lost
connection needs nothing more).

The lock is first come, first served. A receiver is used by a loop of short
receive calls that takes the lock back the moment it lets it go; with a plain
lock a settlement waiting for it can lose that race again and again (more so
on a busy machine) until the message's lock expires and the ack fails.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["FairLock", "Handler"]

H = TypeVar("H")


class FairLock:
    """A non-reentrant lock granted in the order it was asked for (a ticket lock)."""

    def __init__(self) -> None:
        self._turn_changed = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._now_serving = 0
        # Tickets whose holders gave up waiting (interrupted): skipped, not waited for.
        self._abandoned: set[int] = set()

    def __enter__(self) -> None:
        with self._turn_changed:
            ticket = self._next_ticket
            self._next_ticket += 1
            try:
                while ticket != self._now_serving:
                    self._turn_changed.wait()
            except BaseException:
                if ticket == self._now_serving:
                    self._pass_turn()
                else:
                    self._abandoned.add(ticket)
                raise

    def __exit__(self, *exc_info: object) -> None:
        with self._turn_changed:
            self._pass_turn()

    def _pass_turn(self) -> None:
        self._now_serving += 1
        while self._now_serving in self._abandoned:
            self._abandoned.discard(self._now_serving)
            self._now_serving += 1
        self._turn_changed.notify_all()


class Handler(Generic[H]):
    def __init__(self, opener: Callable[[], H]) -> None:
        self._opener = opener
        self._handler: H | None = None
        self.lock = FairLock()
        #: Bumped whenever a handler is dropped, so holders of old tokens can tell.
        self.generation = 0

    @property
    def current(self) -> H | None:
        return self._handler

    @contextlib.contextmanager
    def use(self) -> Iterator[H]:
        """The open handler, held exclusively; dropped if the body raises."""
        with self.lock:
            handler = self.open_held()
            try:
                yield handler
            except Exception:
                self._drop_locked()
                raise

    def open_held(self) -> H:
        """The open handler, opened now if there is none; the caller holds the lock."""
        if self._handler is None:
            self._handler = self._opener()
        return self._handler

    def drop(self) -> None:
        with self.lock:
            self._drop_locked()

    def drop_held(self) -> None:
        """Drop the handler from inside :meth:`use` (the caller holds the lock)."""
        self._drop_locked()

    def _drop_locked(self) -> None:
        handler, self._handler = self._handler, None
        if handler is not None:
            self.generation += 1
            _close_quietly(handler)


def _close_quietly(handler: Any) -> None:
    # Closing after a failure may fail the same way; the handler is gone either way.
    with contextlib.suppress(Exception):
        handler.close()
