"""One emulator as a host process on 127.0.0.1: launch, wait until it answers, stop.

Shared by the Azurite and GCS emulator runners. The process runs in its own process group
(so that stopping it also stops anything it spawned), with its output in a log file of a
temporary folder, whose tail goes into every error about it. Ready means an HTTP request is
answered *by this emulator* (each runner says how it recognises its answer): an open port alone
could be another program's, which would leave the tests talking to a stranger.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from ..hostprocess import OwnedServer, free_loopback_port, kill_group, log_tail, port_is_free

__all__ = ["EmulatorError", "EmulatorProcess", "free_loopback_port"]

_LOG_TAIL_LINES = 40
#: Variables that would point the emulator's interpreter at our packages.
_ENV_DROP = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"})


class EmulatorError(RuntimeError):
    """An emulator could not be installed, started or reached; the message ends with its log."""


# No proxies: an HTTP(S)_PROXY setting must not send loopback requests elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorProcess(OwnedServer):
    """Base of the runners: subclasses say what to run (:meth:`_command`) and what it is called."""

    name = "emulator"

    def __init__(self, *, port: int | None, start_timeout: float, stop_grace: float) -> None:
        self._requested_port = port
        self._port: int | None = None
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- what subclasses provide ----------------------------------------------------------

    def _command(self, port: int, workdir: Path) -> Sequence[str]:
        raise NotImplementedError

    def _environment(self) -> Mapping[str, str]:
        return {}

    def _prepare(self) -> None:
        """Called once before the first launch (e.g. to install the emulator)."""

    #: What :meth:`_answers` requests, and how the emulator's own answer is recognised.
    _probe_path = "/"

    def _is_ours(self, status: int, headers: Mapping[str, str], body: bytes) -> bool:
        raise NotImplementedError

    def _answers(self, port: int) -> bool:
        """Whether the emulator itself answers an HTTP request on 127.0.0.1:``port``."""
        try:
            with _OPENER.open(f"http://127.0.0.1:{port}{self._probe_path}", timeout=2.0) as response:
                return self._is_ours(response.status, dict(response.headers), response.read(4096))
        except urllib.error.HTTPError as error:  # an error status is an answer too
            return self._is_ours(error.code, dict(error.headers), error.read(4096))
        except (OSError, ValueError):
            return False

    # -- state ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmulatorError(f"{self.name} is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the emulator's output ("" when there is none)."""
        return log_tail(self._workdir / "emulator.log" if self._workdir is not None else None, lines)

    def __repr__(self) -> str:
        # The address only: never a connection string or key a subclass may hold.
        where = f"127.0.0.1:{self._port}" if self._port is not None else "not started"
        return f"{type(self).__name__}({where})"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the emulator and wait until its port answers; nothing is left running on failure."""
        if self._process is not None:
            raise EmulatorError(f"{self.name} is already started")
        self._prepare()
        # A port from free_loopback_port() can be taken before the emulator binds it: retry
        # with a fresh one in that (rare) case. An explicit port is tried once.
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            try:
                self._launch()
                self._wait_ready(time.monotonic() + self._start_timeout)
                return self
            except EmulatorError as error:
                in_use = "eaddrinuse" in str(error).lower() or "address already in use" in str(error).lower()
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")


    # -- internals --------------------------------------------------------------------------

    def _launch(self) -> None:
        if self._requested_port is not None and not port_is_free(self._requested_port):
            # Said now: some emulators (gcp-storage-emulator) log a failed bind and keep running.
            raise EmulatorError(f"127.0.0.1:{self._requested_port} is already in use by another program")
        self._port = self._requested_port or free_loopback_port()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"cloudqueue-{self.name.lower()}-"))
        env = {key: value for key, value in os.environ.items() if key not in _ENV_DROP}
        env.update(self._environment())
        command = list(self._command(self._port, self._workdir))
        with (self._workdir / "emulator.log").open("wb") as log:
            try:
                self._process = subprocess.Popen(
                    command,
                    env=env,
                    cwd=self._workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own group: stop() reaches its children too
                )
            except OSError as error:
                raise EmulatorError(f"could not run {command[0]}: {error}") from error
        # Last resort if stop() is never called (a crashed session): kill at interpreter exit.
        self._finalizer = weakref.finalize(self, kill_group, self._process.pid)

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None and self._port is not None
        while True:
            if self._process.poll() is not None:
                raise EmulatorError(
                    f"{self.name} exited with code {self._process.returncode} before it was ready"
                    + self._describe_log()
                )
            if self._answers(self._port):
                return
            if time.monotonic() >= deadline:
                raise EmulatorError(
                    f"{self.name} did not answer on 127.0.0.1:{self._port} within "
                    f"{self._start_timeout:g} s" + self._describe_log()
                )
            time.sleep(0.1)

    def _describe_log(self) -> str:
        tail = self.log_tail()
        return f"\n--- {self.name} log (last {_LOG_TAIL_LINES} lines) ---\n{tail}" if tail else ""


def run_checked(command: Sequence[str], *, what: str, on_error: Callable[[str], Exception]) -> None:
    """Run ``command`` to completion, raising ``on_error(message with its output)`` on failure."""
    result = subprocess.run(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-_LOG_TAIL_LINES:])
        raise on_error(
            f"{what} failed (exit code {result.returncode}): {' '.join(command)}"
            + (f"\n--- output (last {_LOG_TAIL_LINES} lines) ---\n{tail}" if tail else "")
        )
