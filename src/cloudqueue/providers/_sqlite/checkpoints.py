"""Checkpoints off the request path: copying the WAL back into the database file.

SQLite checkpoints automatically in whichever commit finds the WAL past
``wal_autocheckpoint`` pages: that commit then copies every page changed since
the last checkpoint and fsyncs twice, a few milliseconds during which its
caller waits (and, in this process, every writer queued behind it). Measured on
the batched benchmark that was about a tenth of all the time spent. Here a
daemon thread per file and process runs a PASSIVE checkpoint soon after writes
instead (PASSIVE never waits for, nor blocks, readers and writers), while the
requests go on; the automatic checkpoint stays, at a higher mark, only as a
backstop should this thread fall behind or another program write the file.

Durability does not change: a commit is durable in the WAL, and a checkpoint
interrupted by a crash is redone from the WAL on the next open.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["BACKSTOP_PAGES", "THREAD_NAME", "Checkpointer"]

#: ``wal_autocheckpoint`` of request connections: only reached if the thread lags.
BACKSTOP_PAGES = 10_000
#: Seconds between checkpoints while writes go on: each costs two fsyncs, so
#: they are spaced; changes to the same pages meanwhile are copied once.
INTERVAL = 0.05
#: The thread's name, followed by the path of its file.
THREAD_NAME = "cloudqueue sqlite checkpoints"


class Checkpointer:
    """Checkpoints the file of ``connect`` after writes, in its own thread
    (started by the first write, ended by :meth:`stop`; never restarted)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], path: str) -> None:
        self._connect = connect
        self._name = f"{THREAD_NAME} {path}"
        self._written = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def written(self) -> None:
        """Note a committed write; starts the thread on the first."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopped.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name=self._name, daemon=True
                    )
                    self._thread.start()
        if not self._written.is_set():  # set() takes a lock and notifies, each write
            self._written.set()

    def _run(self) -> None:
        try:
            connection = self._connect()
        except Exception:  # cannot even connect: the backstop checkpoints, requests report it
            return
        try:
            while True:
                self._written.wait()
                if self._stopped.is_set():
                    return
                self._written.clear()
                # Busy or worse: the backstop remains, and requests report real faults.
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if self._stopped.wait(INTERVAL):
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        """End the thread (after a checkpoint under way) and close its connection;
        idempotent. Writes after this start no thread."""
        with self._lock:  # a concurrent first write either started it or will not
            self._stopped.set()
            thread = self._thread
        self._written.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
