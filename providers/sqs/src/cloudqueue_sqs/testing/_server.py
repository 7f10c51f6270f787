"""Run LocalStack (SQS, SNS, STS and S3) as a host process on 127.0.0.1.

No Docker: the LocalStack venv's interpreter runs ``localstack.runtime.main`` directly, in its own
process group so that teardown can kill it and anything it spawned.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from cloudqueue.testing.hostprocess import OwnedServer, free_loopback_port, kill_group, log_tail

from ._cert import write_self_signed_pem
from ._errors import LocalStackError, LocalStackStartError
from ._install import venv_python

__all__ = ["ENDPOINT_ENV", "SERVICES", "LocalStack", "free_loopback_port", "localstack_environment"]

ENDPOINT_ENV = "CLOUDQUEUE_SQS_ENDPOINT"
"""Environment variable naming an already-running LocalStack to reuse, e.g.
``http://127.0.0.1:4566``. When set, :class:`LocalStack` starts nothing and stops nothing."""

# Variables of the calling environment that must not reach LocalStack: they would point its
# interpreter at our packages, or its internal AWS clients at some other endpoint.
_ENV_DROP_PREFIXES = ("AWS_ENDPOINT_URL",)
_ENV_DROP = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", ENDPOINT_ENV})

_LOG_TAIL_LINES = 60

#: What the runner serves: SQS; SNS for topics (``sns://``) and STS, which tells the SNS
#: provider its account id; S3 for large payloads kept aside (claim checks).
SERVICES = ("sqs", "sns", "sts", "s3")


def localstack_environment(port: int, root: Path, cert: Path) -> dict[str, str]:
    """The LocalStack settings the runner uses, for a server on ``127.0.0.1:port``.

    Exposed so that a CI script can start LocalStack the same way without Python.
    """
    return {
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        # The default Twisted gateway binds 0.0.0.0 whatever GATEWAY_LISTEN says; hypercorn
        # honours it, which keeps the server on loopback.
        "GATEWAY_SERVER": "hypercorn",
        "SERVICES": ",".join(SERVICES),
        # Load them at start-up, so that "ready" means they answer (not just the gateway).
        "EAGER_SERVICE_LOADING": "1",
        # Queue URLs as http://127.0.0.1:PORT/ACCOUNT/NAME: no *.localhost.localstack.cloud
        # names that would need DNS.
        "SQS_ENDPOINT_STRATEGY": "off",
        "DNS_ADDRESS": "0",  # no DNS server (it would bind port 53 on all interfaces)
        "SKIP_SSL_CERT_DOWNLOAD": "1",  # offline
        "CUSTOM_SSL_CERT_PATH": str(cert),
        "DISABLE_EVENTS": "1",  # no analytics calls home
        "SQS_DISABLE_CLOUDWATCH_METRICS": "1",  # CloudWatch is not running
        "FILESYSTEM_ROOT": str(root),  # state, cache and logs in our temporary folder
    }


class LocalStack(OwnedServer):
    """A LocalStack server with SQS, SNS, STS and S3 (see :data:`SERVICES`), on ``127.0.0.1``, for tests.

    Use it as a context manager::

        with LocalStack(".venv-localstack") as localstack:
            sqs = boto3.client("sqs", endpoint_url=localstack.endpoint_url,
                               region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")

    :meth:`start` launches ``<venv>/bin/python -m localstack.runtime.main`` on a free port (or
    ``port``), with its state in a new temporary folder, and waits until
    ``GET /_localstack/health`` reports them all running. :meth:`stop` sends SIGTERM to the server's
    process group, then SIGKILL after ``stop_grace`` seconds, and removes the folder.

    Reusing a shared server: when ``endpoint_url`` is given, or the environment variable
    ``CLOUDQUEUE_SQS_ENDPOINT`` is set (and ``use_env`` is true), nothing is started: :meth:`start`
    only checks that the server there is ready, and :meth:`stop` leaves it running. Tests sharing
    a server must then use their own queue names.

    Args:
        venv_dir: the venv made by :func:`install_localstack` (not needed when reusing).
        port: the port to listen on; default: a free one, chosen at start.
        endpoint_url: reuse the LocalStack already running there.
        use_env: read ``CLOUDQUEUE_SQS_ENDPOINT`` when ``endpoint_url`` is not given.
        start_timeout: seconds to wait for readiness (typically 1-3 s; slow CI machines more).
        stop_grace: seconds between SIGTERM and SIGKILL (LocalStack needs 2-10 s to exit
            cleanly; nothing of value is lost by killing it, as its state is thrown away).
        extra_env: more LocalStack settings (e.g. ``{"DEBUG": "1"}``); they override the defaults.
    """

    def __init__(
        self,
        venv_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        endpoint_url: str | None = None,
        use_env: bool = True,
        start_timeout: float = 60.0,
        stop_grace: float = 5.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if endpoint_url is None and use_env:
            endpoint_url = os.environ.get(ENDPOINT_ENV) or None
        if endpoint_url is None and venv_dir is None:
            raise ValueError(f"LocalStack needs venv_dir (or endpoint_url, or ${ENDPOINT_ENV})")
        self._external_url = endpoint_url.rstrip("/") if endpoint_url else None
        # Absolute now: the server runs in its own temporary folder, and a relative
        # path means the caller's working directory.
        self._venv = Path(venv_dir).absolute() if venv_dir is not None else None
        self._requested_port = port
        self._port: int | None = None
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._extra_env = dict(extra_env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- properties --------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` (or the reused endpoint); valid once started."""
        if self._external_url is not None:
            return self._external_url
        if self._port is None:
            raise LocalStackError("LocalStack is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port of :attr:`endpoint_url`."""
        if self._external_url is not None:
            parsed = urllib.parse.urlsplit(self._external_url)
            return parsed.port or (443 if parsed.scheme == "https" else 80)
        if self._port is None:
            raise LocalStackError("LocalStack is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id; ``None`` when not running or when reusing a server."""
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        """True while the server process started by this object runs (True when reusing)."""
        if self._external_url is not None:
            return True
        return self._process is not None and self._process.poll() is None

    @property
    def is_external(self) -> bool:
        """True when this object reuses a server it did not start."""
        return self._external_url is not None

    @property
    def log_path(self) -> Path | None:
        """LocalStack's combined stdout/stderr while it runs (removed by :meth:`stop`)."""
        return self._workdir / "localstack.log" if self._workdir is not None else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server (or check the reused one) and wait until SQS is running.

        Raises:
            LocalStackStartError: not ready within ``start_timeout``, or the process exited; the
                message includes the tail of LocalStack's log. Nothing is left running.
        """
        if self._external_url is not None:
            self._wait_ready(deadline=time.monotonic() + self._start_timeout)
            return self
        if self._process is not None:
            raise LocalStackError("LocalStack is already started")
        assert self._venv is not None
        python = venv_python(self._venv)
        if not python.exists():
            raise LocalStackStartError(
                f"no LocalStack venv at {self._venv}: create it with install_localstack() or "
                f"`python -m cloudqueue_sqs.testing install --venv {self._venv}`"
            )
        # A port picked by free_loopback_port() can be taken before LocalStack binds it: retry
        # with a fresh one in that (rare) case. An explicit port is tried once.
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            try:
                self._launch(python)
                self._wait_ready(deadline=time.monotonic() + self._start_timeout)
                return self
            except LocalStackStartError as error:
                address_in_use = "address already in use" in str(error).lower()
                self.stop()
                if not address_in_use or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")


    # -- health ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Return LocalStack's ``/_localstack/health`` document."""
        # No proxies: an HTTP(S)_PROXY setting must not send loopback requests elsewhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.endpoint_url}/_localstack/health", timeout=2.0) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document

    def is_ready(self) -> bool:
        """True when the health document says every service in :data:`SERVICES` is running."""
        try:
            services = self.health().get("services")
            return isinstance(services, dict) and all(
                services.get(name) == "running" for name in SERVICES
            )
        except (OSError, ValueError, LocalStackError):
            return False

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of LocalStack's log ("" when there is none)."""
        return log_tail(self.log_path, lines)

    # -- internals ---------------------------------------------------------------------------

    def _launch(self, python: Path) -> None:
        self._port = self._requested_port or free_loopback_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="cloudqueue-localstack-"))
        cert = write_self_signed_pem(python, self._workdir / "server.pem")
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _ENV_DROP and not key.startswith(_ENV_DROP_PREFIXES)
        }
        env.update(localstack_environment(self._port, self._workdir / "root", cert))
        env.update(self._extra_env)
        assert self.log_path is not None
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(python), "-m", "localstack.runtime.main"],
                env=env,
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group (pgid == pid): teardown kills the whole group, and a Ctrl-C
                # in the terminal reaches only the test runner, which then stops us cleanly.
                start_new_session=True,
            )
        # Last resort if stop() is never called (a crashed test session): kill at interpreter
        # exit, without the grace period.
        self._finalizer = weakref.finalize(self, kill_group, self._process.pid)

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise LocalStackStartError(
                    f"LocalStack exited with code {self._process.returncode} before it was "
                    f"ready{self._describe_log()}"
                )
            if self.is_ready():
                return
            if time.monotonic() >= deadline:
                raise LocalStackStartError(
                    f"LocalStack at {self.endpoint_url} did not report {', '.join(SERVICES)} running within "
                    f"{self._start_timeout:g} s{self._describe_log()}"
                )
            time.sleep(0.1)

    def _describe_log(self) -> str:
        tail = self.log_tail()
        if not tail:
            return ""
        return f"\n--- LocalStack log (last {_LOG_TAIL_LINES} lines) ---\n{tail}"
