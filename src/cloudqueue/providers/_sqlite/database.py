"""One SQLite file: its connections, transactions, error table and wake-ups.

Connections are pooled (one per concurrent caller, reused), opened in
autocommit mode so every write is an explicit ``BEGIN IMMEDIATE`` transaction:
the write lock is taken up front, which makes leases exclusive across
processes and lets the busy timeout apply (a deferred transaction that later
upgrades to a write fails at once with SQLITE_BUSY instead of waiting).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from ...errors import (
    ErrorCode,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    QueueError,
    Unavailable,
    translated,
)
from .checkpoints import BACKSTOP_PAGES, Checkpointer
from .schema import SCHEMA, SCHEMA_VERSION

__all__ = ["Database", "Options", "Signal"]

T = TypeVar("T")

# Primary result codes (the low byte of sqlite_errorcode), see sqlite.org/rescode.html.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _AUTH, _NOTADB = (
    3, 5, 6, 8, 10, 11, 13, 14, 23, 26,
)
_CODES = {
    _PERM: ErrorCode.PERMISSION_DENIED,
    _AUTH: ErrorCode.PERMISSION_DENIED,
    _READONLY: ErrorCode.PERMISSION_DENIED,
    _CANTOPEN: ErrorCode.PERMISSION_DENIED,
    _BUSY: ErrorCode.UNAVAILABLE,
    _LOCKED: ErrorCode.UNAVAILABLE,
    _NOTADB: ErrorCode.INVALID_ARGUMENT,
    _CORRUPT: ErrorCode.FAILED_PRECONDITION,
    _FULL: ErrorCode.RESOURCE_EXHAUSTED,
    _IOERR: ErrorCode.INTERNAL,
}
_EXPLAINED = {
    _NOTADB: "is not a SQLite database",
    _CORRUPT: "is corrupt",
    _READONLY: "is read-only",
    _CANTOPEN: "cannot be opened (check the permissions of the file and its directory)",
    _PERM: "may not be accessed",
    _FULL: "cannot grow: the disk is full",
}


def _primary_code(exc: BaseException) -> int:
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


def _code_of(exc: BaseException) -> ErrorCode:
    return _CODES.get(_primary_code(exc), ErrorCode.UNKNOWN)


#: sqlite3 exceptions by type; the typed result code decides for the generic ones.
ERROR_TABLE: dict[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {
    sqlite3.OperationalError: _code_of,
    sqlite3.DatabaseError: _code_of,
    sqlite3.IntegrityError: ErrorCode.INTERNAL,
    sqlite3.InterfaceError: ErrorCode.INTERNAL,
    sqlite3.ProgrammingError: ErrorCode.INTERNAL,
}

_SYNCHRONOUS = ("off", "normal", "full", "extra")
DEFAULT_BUSY_TIMEOUT = 5.0
#: Bytes the WAL file is truncated to after a checkpoint that emptied it.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Options:
    """How connections to one file are set up (from the URL)."""

    #: ``normal`` survives process crashes; ``full``/``extra`` also power loss.
    synchronous: str = "normal"
    #: Seconds a statement waits for another process's write lock.
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT

    def __post_init__(self) -> None:
        if self.synchronous not in _SYNCHRONOUS:
            raise InvalidArgument(
                f"URL parameter synchronous={self.synchronous!r} must be one of "
                + ", ".join(_SYNCHRONOUS)
            )
        if not 0 <= self.busy_timeout <= 3600:
            raise InvalidArgument(
                f"URL parameter busy_timeout={self.busy_timeout!r} must be 0 to 3600 seconds"
            )


class Signal:
    """What this process's users of one file share: a condition that wakes its
    waiting receivers when something changed (other processes cannot be heard;
    receivers also poll, see the drivers), and a lock its writers queue on.

    The lock matters for speed: SQLite's own busy handler sleeps 1, 2, 5, 10...
    ms when the write lock is taken, which is right for other processes but
    wastes most of the time when two threads of one process alternate.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.generation = 0
        self.write_lock = threading.Lock()

    def notify(self) -> None:
        with self._condition:
            self.generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Sleep up to ``timeout`` s unless the generation moved past ``seen``."""
        with self._condition:
            if self.generation == seen and timeout > 0:
                self._condition.wait(timeout)


_signals: dict[str, Signal] = {}
_signals_lock = threading.Lock()


def signal_for(path: str) -> Signal:
    with _signals_lock:
        signal = _signals.get(path)
        if signal is None:
            signal = _signals[path] = Signal()
        return signal


class Database:
    """A pool of connections to one file, created with its tables on first use."""

    def __init__(self, path: str, options: Options) -> None:
        self.path = path
        self.options = options
        self.signal = signal_for(path)
        #: Bumped by ``declare`` in this process, so drivers re-read settings at once.
        self.settings_generation = 0
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._checkpointer = Checkpointer(self._connect)
        self._check_location()
        with self.connection() as connection:
            self._create(connection)

    # -- opening ---------------------------------------------------------------------

    def _check_location(self) -> None:
        """Clear errors for the usual mistakes, before SQLite gives a vague one."""
        path = self.path
        directory = os.path.dirname(path) or "."
        if os.path.isdir(path):
            raise InvalidArgument(f"SQLite database path {path!r} is a directory, not a file")
        if not os.path.isdir(directory):
            raise FailedPrecondition(
                f"SQLite database {path!r}: directory {directory!r} does not exist; create it first"
            )
        if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            raise PermissionDenied(f"SQLite database {path!r} is not readable and writable")
        if not os.access(directory, os.W_OK | os.X_OK):
            # WAL mode keeps -wal and -shm files next to the database.
            raise PermissionDenied(
                f"SQLite database {path!r}: directory {directory!r} is not writable "
                "(needed for the database and its -wal/-shm files)"
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path,
                timeout=self.options.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=128,
            )
            connection.execute(f"PRAGMA synchronous = {self.options.synchronous}")
            # The checkpointer thread checkpoints; commits only past the backstop.
            connection.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            # ...and a WAL that a burst grew is cut back to this after a checkpoint.
            connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        except sqlite3.Error as exc:
            raise self.error(exc, "opening") from exc
        return connection

    def _create(self, connection: sqlite3.Connection) -> None:
        def create(cursor: sqlite3.Cursor) -> None:
            (version,) = cursor.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"SQLite database {self.path!r} has schema version {version}; this "
                    f"cloudqueue knows up to {SCHEMA_VERSION}: upgrade cloudqueue"
                )
            if version < SCHEMA_VERSION:
                cursor.executescript("BEGIN IMMEDIATE;" + SCHEMA)
                cursor.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                cursor.execute("COMMIT")

        def check_wal(cursor: sqlite3.Cursor) -> None:
            (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise FailedPrecondition(
                    f"SQLite database {self.path!r} cannot use WAL mode (journal mode {mode})"
                )

        self._run(connection, check_wal, "opening", transaction=False)
        self._run(connection, create, "creating the tables of", transaction=False)

    # -- connections and transactions -------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections and thread are not ours
                self._idle, self._pid = [], os.getpid()
                self._checkpointer = Checkpointer(self._connect)
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connect()
        try:
            yield connection
        finally:
            with self._lock:
                self._idle.append(connection)

    def write(self, work: Callable[[sqlite3.Cursor], T], what: str) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction."""
        with self.signal.write_lock, self.connection() as connection:
            result = self._run(connection, work, what, transaction=True)
        self._checkpointer.written()
        return result

    def read(self, work: Callable[[sqlite3.Cursor], T], what: str) -> T:
        """Run ``work`` outside any write transaction (readers never block writers in WAL)."""
        with self.connection() as connection:
            return self._run(connection, work, what, transaction=False)

    def _run(
        self,
        connection: sqlite3.Connection,
        work: Callable[[sqlite3.Cursor], T],
        what: str,
        *,
        transaction: bool,
    ) -> T:
        """One attempt. A file still locked after the busy timeout (SQLite waiting for
        the other process, not us retrying) raises a retryable ``Unavailable``: the
        portable layer retries it with backoff, as drivers never retry."""
        cursor = connection.cursor()
        try:
            if transaction:
                cursor.execute("BEGIN IMMEDIATE")
            try:
                result = work(cursor)
                if transaction:
                    cursor.execute("COMMIT")
                return result
            except BaseException:
                if connection.in_transaction:
                    connection.rollback()
                raise
        except sqlite3.Error as exc:
            if _primary_code(exc) in (_BUSY, _LOCKED):
                raise Unavailable(
                    f"{what} SQLite database {self.path!r} failed: the file stayed locked by "
                    f"another connection past the busy timeout ({self.options.busy_timeout:g} s)"
                ) from exc
            raise self.error(exc, what) from exc
        finally:
            cursor.close()

    def error(self, exc: sqlite3.Error, what: str) -> QueueError:
        """The portable error for ``exc``, naming the file and, where known, the problem."""
        problem = _EXPLAINED.get(_primary_code(exc))
        if problem is not None:
            error = translated(exc, ERROR_TABLE, f"{what} SQLite database {self.path!r}")
            return type(error)(f"SQLite database {self.path!r} {problem} ({what}: {exc})")
        return translated(exc, ERROR_TABLE, f"{what} SQLite database {self.path!r}")

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
