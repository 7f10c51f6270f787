"""Two :class:`~cloudqueue.worker.IdempotencyStore` implementations: in memory (one
process) and an SQLite file (every process on one machine)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable

from ..errors import InvalidArgument
from ._idempotency import Claim, ClaimState

__all__ = ["MemoryStore", "SQLiteStore"]

_CLAIMED = Claim(ClaimState.CLAIMED)
_DONE = Claim(ClaimState.DONE)

#: Expired keys are purged after this many claims: often enough to bound the size,
#: rarely enough that purging costs nothing per message.
PURGE_EVERY = 1000


class MemoryStore:
    """Keys in a dict: for one worker process (and for tests). Lost on exit, so it
    catches duplicates within a run, not across a restart or a crash."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[bool, float]] = {}  # key -> (done, expires)
        self._claims = 0

    def claim(self, key: str, hold: float) -> Claim:
        with self._lock:
            now = self._clock()
            self._claims += 1
            if self._claims % PURGE_EVERY == 0:
                self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            entry = self._keys.get(key)
            if entry is not None and entry[1] > now:
                return _DONE if entry[0] else Claim(ClaimState.BUSY, entry[1] - now)
            self._keys[key] = (False, now + hold)
            return _CLAIMED

    def complete(self, key: str, retention: float) -> None:
        with self._lock:
            self._keys[key] = (True, self._clock() + retention)

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None and not entry[0]:
                del self._keys[key]

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for _, expires in self._keys.values() if expires > now)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cloudqueue_processed (
    key TEXT PRIMARY KEY,
    done INTEGER NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID
"""


class SQLiteStore:
    """Keys in an SQLite file, shared by every process that opens the same path.

    Each call is one short transaction (``BEGIN IMMEDIATE``: the read and the write of
    a claim cannot interleave with another process's). Times are wall-clock
    (``time.time()``), since processes share no monotonic clock. ``complete`` is
    durable when it returns (WAL journal with ``synchronous=FULL``).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        path = os.fspath(path)
        if not path or path == ":memory:":
            raise InvalidArgument(
                "SQLiteStore needs a file path (shared by processes); use MemoryStore for one process"
            )
        self.path = path
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        # Autocommit mode: each method opens and ends its own transaction.
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._claims = 0

    def claim(self, key: str, hold: float) -> Claim:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                self._claims += 1
                if self._claims % PURGE_EVERY == 0:
                    db.execute("DELETE FROM cloudqueue_processed WHERE expires <= ?", (now,))
                row = db.execute(
                    "SELECT done, expires FROM cloudqueue_processed WHERE key = ? AND expires > ?", (key, now)
                ).fetchone()
                if row is not None:
                    return _DONE if row[0] else Claim(ClaimState.BUSY, row[1] - now)
                db.execute(
                    "INSERT OR REPLACE INTO cloudqueue_processed (key, done, expires) VALUES (?, 0, ?)",
                    (key, now + hold),
                )
                return _CLAIMED
            finally:
                db.execute("COMMIT")

    def complete(self, key: str, retention: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO cloudqueue_processed (key, done, expires) VALUES (?, 1, ?)",
                (key, time.time() + retention),
            )

    def release(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM cloudqueue_processed WHERE key = ? AND done = 0", (key,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"
