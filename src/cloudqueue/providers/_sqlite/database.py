"""One SQLite file: its connections, transactions, error table and wake-ups.

Connections are pooled (one per concurrent caller, reused), opened in
autocommit mode so every write is an explicit ``BEGIN IMMEDIATE`` transaction:
the write lock is taken up front, which makes leases exclusive across
processes and lets the busy timeout apply (a deferred transaction that later
upgrades to a write fails at once with SQLITE_BUSY instead of waiting).

A file is open in a process only while something uses it: :class:`Registry`
counts the users of each :class:`Database` (drivers, and ``declare``, ``purge``,
``delete``, ``capabilities``, ``stats``, ``peek`` and ``redrive_source`` for their
duration) and closes it, connections and
checkpoint thread, when the last one lets go. Using it again opens it afresh.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar

from ...errors import (
    Closed,
    ErrorCode,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    QueueError,
    Unavailable,
    translated,
)
from .checkpoints import BACKSTOP_PAGES, Checkpointer
from .schema import SCHEMA, SCHEMA_VERSION, add_missing_columns

__all__ = ["Database", "Options", "Registry", "Signal"]

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
    """A pool of connections to one file, created with its tables on first use.

    Opened by the constructor; :meth:`close` closes every connection and the
    checkpoint thread, after which it refuses to be used (open a new one).
    """

    def __init__(self, path: str, options: Options) -> None:
        self.path = path
        self.options = options
        self.signal = signal_for(path)
        #: Bumped by ``declare`` in this process, so drivers re-read settings at once.
        self.settings_generation = 0
        #: Users counted by the :class:`Registry` that opened it.
        self.users = 0
        self._idle: list[sqlite3.Connection] = []
        #: Every pooled connection of this process, idle or in use.
        self._open: set[sqlite3.Connection] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._checkpointer = Checkpointer(self._connect, path)
        self._check_location()
        try:
            with self.connection() as connection:
                self._create(connection)
        except BaseException:
            self.close()
            raise

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
        except sqlite3.Error as exc:
            raise self.error(exc, "opening") from exc
        try:
            connection.execute(f"PRAGMA synchronous = {self.options.synchronous}")
            # The checkpointer thread checkpoints; commits only past the backstop.
            connection.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            # ...and a WAL that a burst grew is cut back to this after a checkpoint.
            connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        except sqlite3.Error as exc:
            connection.close()  # else the traceback would keep the file open
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
                add_missing_columns(cursor)
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

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connections(self) -> int:
        """Pooled connections open in this process (idle or in use), without the
        checkpoint thread's."""
        with self._lock:
            return len(self._open)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        connection = self._take()
        try:
            yield connection
        finally:
            self._give_back(connection)

    # write and read take and give back by hand, without a generator-based context
    # manager per call: see drivers._Use for what the two changes measured.

    def _take(self) -> sqlite3.Connection:
        """An idle pooled connection, or a new one; give it back with :meth:`_give_back`."""
        with self._lock:
            if self._closed:
                raise Closed(f"SQLite database {self.path!r} was closed in this process")
            if self._pid != os.getpid():  # forked: the parent's connections and thread are not ours
                self._idle, self._open, self._pid = [], set(), os.getpid()
                self._checkpointer = Checkpointer(self._connect, self.path)
            if self._idle:
                return self._idle.pop()
        connection = self._connect()
        with self._lock:
            self._open.add(connection)
        return connection

    def _give_back(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            ours = connection in self._open
            keep = ours and not self._closed
            if keep:
                self._idle.append(connection)
            elif ours:
                self._open.discard(connection)
        if ours and not keep:  # the database was closed during this call
            connection.close()

    def write(self, work: Callable[[sqlite3.Cursor], T], what: str) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction."""
        with self.signal.write_lock:
            connection = self._take()
            try:
                result = self._run(connection, work, what, transaction=True)
            finally:
                self._give_back(connection)
        self._checkpointer.written()
        return result

    def read(self, work: Callable[[sqlite3.Cursor], T], what: str) -> T:
        """Run ``work`` outside any write transaction (readers never block writers in WAL)."""
        connection = self._take()
        try:
            return self._run(connection, work, what, transaction=False)
        finally:
            self._give_back(connection)

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
        """Stop the checkpoint thread and close every connection (those in use
        when their call ends); idempotent. Once the last connection of every
        process is closed, SQLite checkpoints the WAL into the file and removes it."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open.difference_update(idle)
            checkpointer = self._checkpointer
        checkpointer.stop()
        for connection in idle:
            with suppress(sqlite3.Error):  # closing never fails usefully; the file stays valid
                connection.close()


class Registry:
    """The databases a provider has open in this process, each counted by its users.

    :meth:`acquire` opens a file (or counts one more user of it), :meth:`release`
    counts one less and closes it with the last. Thread-safe. In this process a
    file is opened or closed by one thread at a time: connections creating a new
    file at once would race to switch it to WAL (SQLite refuses one of them at
    once with SQLITE_BUSY, without waiting), and opening a file overlapping its
    last close (which checkpoints and removes the WAL) gains nothing.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[str, Options], Database] = {}
        #: Per path: held while a database of it is being opened or closed.
        self._gates: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def acquire(self, path: str, options: Options) -> Database:
        key = (path, options)
        with self._lock:
            database = self._open.get(key)
            if database is not None:
                database.users += 1
                return database
            gate = self._gates.setdefault(path, threading.Lock())
        # Opening does I/O (and may wait for another process's lock): not under the lock.
        with gate:
            with self._lock:
                database = self._open.get(key)
                if database is not None:  # opened by the thread we waited for
                    database.users += 1
                    return database
            database = Database(path, options)
            with self._lock:
                self._open[key] = database
                database.users = 1
        return database

    def release(self, database: Database) -> None:
        """One user less; the last one closes the file. Each acquire releases once."""
        with self._lock:
            if database.users > 0:
                database.users -= 1
            if database.users > 0:
                return
            key = (database.path, database.options)
            if self._open.get(key) is database:
                del self._open[key]
            gate = self._gates.setdefault(database.path, threading.Lock())
        with gate:
            database.close()

    @contextmanager
    def using(self, path: str, options: Options) -> Iterator[Database]:
        """The file open for the duration of one call (``declare``, ``purge``...)."""
        database = self.acquire(path, options)
        try:
            yield database
        finally:
            self.release(database)

    def databases(self) -> list[Database]:
        """The databases open now (for tests and diagnostics)."""
        with self._lock:
            return list(self._open.values())

    def close(self) -> None:
        """Close every database, whoever still uses it (their calls then raise ``Closed``)."""
        with self._lock:
            databases, self._open = list(self._open.values()), {}
            for database in databases:
                database.users = 0
            gates = [self._gates.setdefault(db.path, threading.Lock()) for db in databases]
        for database, gate in zip(databases, gates, strict=True):
            with gate:
                database.close()
