"""Small pieces every runner of a local server as a host process needs.

Used by the storage emulators (:mod:`cloudqueue.testing.storage`) and by plugins' runners
(the SQS plugin's LocalStack): a free loopback port, stopping a server's whole process
group, a file lock around a one-time install, the tail of a server's log for errors, and
:class:`OwnedServer`, the stopping and context-manager half every runner shares.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "OwnedServer",
    "file_lock",
    "free_loopback_port",
    "kill_group",
    "log_tail",
    "port_is_free",
    "terminate_group",
]


class OwnedServer(abc.ABC):
    """A server process this runner started in its own process group, with a temporary
    folder: :meth:`stop` and the context manager. Subclasses start it, setting the four
    attributes below (a runner reusing someone else's server leaves ``_process`` None, and
    :meth:`stop` then leaves that server alone)."""

    _process: subprocess.Popen[bytes] | None
    _workdir: Path | None
    _port: int | None
    #: Kills the group if the runner is garbage-collected without being stopped.
    _finalizer: weakref.finalize[Any, Any] | None
    _stop_grace: float

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the server (or check the one reused) and wait until it is ready."""

    def stop(self) -> None:
        """Stop the server and remove its temporary folder; idempotent.

        Sends SIGTERM to the server's process group, SIGKILL after ``stop_grace`` seconds, and
        SIGKILL once more to the group so that no child outlives the server.
        """
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        process, workdir = self._process, self._workdir
        self._process = self._workdir = None
        self._port = None
        if process is not None:
            terminate_group(process, self._stop_grace)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def terminate_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the process group led by ``process``, SIGKILL after ``grace`` seconds.

    The process must have been started with ``start_new_session=True`` (its pid is its group).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.wait()
    # The leader is gone; anything it spawned may still be in its group.
    kill_group(process.pid)


def kill_group(pgid: int) -> None:
    """SIGKILL to a process group; one already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), so that parallel test
    sessions install a server once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def log_tail(path: Path | None, lines: int) -> str:
    """The last ``lines`` lines of the log at ``path`` ("" when there is none)."""
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
