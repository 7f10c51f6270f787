"""One SDK sender or receiver, opened on first use and reused.

Opening a handler costs about half a second in the SDK, so drivers keep theirs
for their whole life. SDK handlers are not thread-safe: every call goes
through :meth:`Handler.use`, which serialises callers. After a failure the
handler is dropped, so the next call opens a fresh one (recovery after a lost
connection needs nothing more).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Handler"]

H = TypeVar("H")


class Handler(Generic[H]):
    def __init__(self, opener: Callable[[], H]) -> None:
        self._opener = opener
        self._handler: H | None = None
        self.lock = threading.Lock()
        #: Bumped whenever a handler is dropped, so holders of old tokens can tell.
        self.generation = 0

    @property
    def current(self) -> H | None:
        return self._handler

    @contextlib.contextmanager
    def use(self) -> Iterator[H]:
        """The open handler, held exclusively; dropped if the body raises."""
        with self.lock:
            if self._handler is None:
                self._handler = self._opener()
            try:
                yield self._handler
            except Exception:
                self._drop_locked()
                raise

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
