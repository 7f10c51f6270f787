"""Run a private RabbitMQ node (the system's ``rabbitmq-server`` package) as a host process.

No Docker, no system service: the broker runs from ``/usr/lib/rabbitmq/bin/rabbitmq-server``
(the Debian/Ubuntu package's own script, which unlike ``/usr/sbin/rabbitmq-server`` does not
switch to the ``rabbitmq`` user when run as root), on free 127.0.0.1 ports, with every file in a
temporary folder (see :mod:`._layout`). Its private epmd is started first, by the runner, in its
own process group: Erlang would otherwise start a daemonised epmd that no stop could reach.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from cloudqueue.testing.hostprocess import (
    OwnedServer,
    free_loopback_port,
    kill_group,
    log_tail,
    terminate_group,
)

from ._layout import NodeLayout, NodePorts
from ._probe import answers_as

__all__ = ["SERVER_ENV", "RabbitMqServer", "RabbitMqServerError", "find_rabbitmq_server"]

SERVER_ENV = "CLOUDQUEUE_RABBITMQ_SERVER"
"""Environment variable naming the ``rabbitmq-server`` script to run (default: the Debian path)."""

_DEFAULT_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_INSTALL_HINT = "install it with `apt-get install rabbitmq-server` (Debian/Ubuntu)"
_LOG_TAIL_LINES = 40
_MANAGEMENT_PLUGIN = "rabbitmq_management"


class RabbitMqServerError(RuntimeError):
    """The broker could not be found, started, reached or controlled; the message ends with its log."""


def find_rabbitmq_server() -> Path:
    """The ``rabbitmq-server`` script: ``$CLOUDQUEUE_RABBITMQ_SERVER`` or the Debian package's."""
    configured = os.environ.get(SERVER_ENV)
    script = Path(configured) if configured else _DEFAULT_SCRIPT
    if not script.is_file():
        where = f"${SERVER_ENV}={configured}" if configured else str(script)
        raise RabbitMqServerError(f"no rabbitmq-server at {where}: {_INSTALL_HINT}")
    return script


def _find_epmd() -> str:
    epmd = shutil.which("epmd") or shutil.which("epmd", path="/usr/lib/erlang/bin")
    if epmd is None:
        raise RabbitMqServerError(f"no epmd (Erlang's port mapper) on PATH: {_INSTALL_HINT}")
    return epmd


class RabbitMqServer(OwnedServer):
    """A RabbitMQ broker on ``127.0.0.1`` for tests, with its own data in a temporary folder::

        with RabbitMqServer() as rabbit:
            producer = cloudqueue.open_producer(rabbit.url + "?queue=orders")

    :meth:`start` writes the node's files, starts its epmd and the broker on free ports (or
    ``port`` for AMQP), and waits until the broker itself answers an AMQP handshake (about 5 s).
    :meth:`stop` stops the broker gracefully (SIGTERM to its process group, SIGKILL after
    ``stop_grace`` s), then its epmd, and removes the folder. :meth:`restart` stops and starts
    the broker on the same ports keeping its data (durable queues and their messages survive).

    Args:
        port: the AMQP port; default a free one.
        user: the broker's one user (administrator of the default vhost ``/``).
        password: its password; default a random one (it appears in :attr:`url`, never in the
            repr).
        plugins: plugins to enable, e.g. ``["rabbitmq_management"]`` (its HTTP API then listens
            on :attr:`management_port`).
        settings: more ``rabbitmq.conf`` lines as key/value, e.g. ``{"consumer_timeout": "60000"}``.
        start_timeout: seconds to wait for readiness.
        stop_grace: seconds between SIGTERM and SIGKILL (a graceful stop takes about 1 s).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "cloudqueue",
        password: str | None = None,
        plugins: Sequence[str] = (),
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 90.0,
        stop_grace: float = 30.0,
    ) -> None:
        self._requested_port = port
        self._user = user
        self._password = password if password is not None else secrets.token_urlsafe(18)
        self._plugins = tuple(plugins)
        self._settings = dict(settings or {})
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._node_name = f"cloudqueue-{secrets.token_hex(6)}@localhost"
        self._process: subprocess.Popen[bytes] | None = None  # the broker
        self._epmd: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._ports: NodePorts | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        #: Process groups running now (broker, epmd): what the finalizer kills. The same list
        #: object for the server's whole life, since the finalizer holds it.
        self._groups: list[int] = []

    # -- what tests read ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``amqp://user:password@127.0.0.1:PORT/`` (the default vhost); holds the password."""
        quote = urllib.parse.quote
        return f"amqp://{quote(self._user, safe='')}:{quote(self._password, safe='')}@127.0.0.1:{self.port}/"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The AMQP port."""
        if self._ports is None:
            raise RabbitMqServerError("the RabbitMQ server is not started")
        return self._ports.amqp

    @property
    def user(self) -> str:
        return self._user

    @property
    def password(self) -> str:
        return self._password

    @property
    def node_name(self) -> str:
        """The Erlang node name, unique per server object (``cloudqueue-<hex>@localhost``)."""
        return self._node_name

    @property
    def ports(self) -> NodePorts:
        """All loopback ports the node uses (AMQP, distribution, epmd, management)."""
        if self._ports is None:
            raise RabbitMqServerError("the RabbitMQ server is not started")
        return self._ports

    @property
    def management_port(self) -> int:
        """The HTTP port of the management plugin (only with ``plugins=["rabbitmq_management"]``)."""
        management = self.ports.management
        if management is None:
            raise RabbitMqServerError("the management plugin is not enabled on this server")
        return management

    @property
    def workdir(self) -> Path | None:
        """The node's folder (config, data, logs) while it exists."""
        return self._workdir

    @property
    def pid(self) -> int | None:
        """The broker's process id (its process group id too); None when not running."""
        return self._process.pid if self._process is not None else None

    @property
    def epmd_pid(self) -> int | None:
        return self._epmd.pid if self._epmd is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the broker's log (its output while it boots)."""
        if self._workdir is None:
            return ""
        layout = self._layout()
        return log_tail(layout.node_log, lines) or log_tail(layout.broker_output, lines)

    def __repr__(self) -> str:
        # The address only: never the password.
        where = f"127.0.0.1:{self._ports.amqp}" if self._ports is not None else "not started"
        return f"{type(self).__name__}({where})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start epmd and the broker, and wait until the broker answers; nothing is left
        running on failure. A port taken between choosing and binding it is retried with
        fresh ones (an explicit ``port`` is tried once)."""
        if self._workdir is not None:
            raise RabbitMqServerError("the RabbitMQ server is already started")
        script = find_rabbitmq_server()
        epmd = _find_epmd()
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            try:
                self._create_node()
                self._launch_epmd(epmd)
                self._launch_broker(script)
                self._wait_ready()
                return self
            except RabbitMqServerError as error:
                self.stop()
                if not _port_conflict(str(error)) or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the broker (gracefully, see ``stop_grace``), then epmd; remove the folder.
        Idempotent."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        broker, epmd, workdir = self._process, self._epmd, self._workdir
        self._process = self._epmd = None
        self._workdir = None
        self._ports = None
        self._port = None
        if broker is not None:
            terminate_group(broker, self._stop_grace)
        if epmd is not None:
            terminate_group(epmd, self._stop_grace)
        self._groups.clear()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def restart(self) -> None:
        """Stop the broker gracefully and start it again on the same ports with the same data
        (durable queues and the messages the broker confirmed survive).

        There is deliberately no "crash" variant: a broker SIGKILLed seconds after a quorum
        queue was declared came back (3.10.8 here) with the queue listed but unusable, its Ra
        member no longer registered, which would test RabbitMQ rather than the provider.
        """
        if self._process is None or self._workdir is None:
            raise RabbitMqServerError("the RabbitMQ server is not started")
        broker, self._process = self._process, None
        terminate_group(broker, self._stop_grace)
        self._groups.remove(broker.pid)
        # The script we waited for leads the group; beam may still be closing its sockets for
        # a moment after it.
        deadline = time.monotonic() + self._stop_grace
        while not (_nobody_listens(self.port) and _nobody_listens(self.ports.dist)):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if not _nobody_listens(self.port):
            raise RabbitMqServerError(
                f"127.0.0.1:{self.port} was taken by another program while the broker was down"
            )
        try:
            self._launch_broker(find_rabbitmq_server())
            self._wait_ready()
        except RabbitMqServerError:
            self.stop()
            raise

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl <args>`` against this node; returns its output.

        For example ``ctl("list_queues", "name", "messages")``. Each call starts the CLI tool
        (about 1 s).
        """
        if self._workdir is None or self._ports is None:
            raise RabbitMqServerError("the RabbitMQ server is not started")
        rabbitmqctl = find_rabbitmq_server().with_name("rabbitmqctl")
        command = [str(rabbitmqctl), "-n", self._node_name, *args]
        try:
            result = subprocess.run(
                command,
                env=self._layout().environment(self._ports),
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RabbitMqServerError(f"rabbitmqctl {' '.join(args)} failed: {error}") from error
        if result.returncode != 0:
            raise RabbitMqServerError(
                f"rabbitmqctl {' '.join(args)} exited with code {result.returncode}: "
                + (result.stderr or result.stdout).strip()
            )
        return result.stdout

    # -- internals ---------------------------------------------------------------------------

    def _layout(self) -> NodeLayout:
        assert self._workdir is not None
        return NodeLayout(self._workdir, self._node_name)

    def _create_node(self) -> None:
        if self._requested_port is not None and not _nobody_listens(self._requested_port):
            raise RabbitMqServerError(
                f"127.0.0.1:{self._requested_port} is already in use by another program"
            )
        management = free_loopback_port() if _MANAGEMENT_PLUGIN in self._plugins else None
        self._ports = NodePorts(
            amqp=self._requested_port or free_loopback_port(),
            dist=free_loopback_port(),
            epmd=free_loopback_port(),
            management=management,
        )
        self._port = self._ports.amqp
        self._workdir = Path(tempfile.mkdtemp(prefix="cloudqueue-rabbitmq-"))
        self._layout().write(
            ports=self._ports,
            user=self._user,
            password=self._password,
            plugins=self._plugins,
            settings=self._settings,
        )
        # Last resort if stop() is never called (a crashed session): kill at interpreter exit.
        self._finalizer = weakref.finalize(self, _kill_groups, self._groups)

    def _launch_epmd(self, epmd: str) -> None:
        assert self._ports is not None and self._workdir is not None
        layout = self._layout()
        with (self._workdir / "epmd.out").open("wb") as output:
            try:
                self._epmd = subprocess.Popen(
                    [epmd, "-port", str(self._ports.epmd)],  # foreground: it stays our child
                    env=layout.environment(self._ports),
                    cwd=self._workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise RabbitMqServerError(f"could not run {epmd}: {error}") from error
        self._groups.append(self._epmd.pid)
        deadline = time.monotonic() + 10.0
        while not _accepts(self._ports.epmd):
            if self._epmd.poll() is not None:
                output_text = log_tail(self._workdir / "epmd.out", _LOG_TAIL_LINES)
                raise RabbitMqServerError(f"epmd exited with code {self._epmd.returncode}: {output_text}")
            if time.monotonic() >= deadline:
                raise RabbitMqServerError(f"epmd did not listen on 127.0.0.1:{self._ports.epmd} within 10 s")
            time.sleep(0.02)

    def _launch_broker(self, script: Path) -> None:
        assert self._ports is not None and self._workdir is not None
        layout = self._layout()
        with layout.broker_output.open("ab") as output:
            try:
                self._process = subprocess.Popen(
                    [str(script)],
                    env=layout.environment(self._ports),
                    cwd=self._workdir,  # where an Erlang crash dump would go
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own group: stop() reaches beam and its helpers
                )
            except OSError as error:
                raise RabbitMqServerError(f"could not run {script}: {error}") from error
        self._groups.append(self._process.pid)

    def _wait_ready(self) -> None:
        assert self._process is not None and self._ports is not None
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self._process.poll() is not None:
                raise RabbitMqServerError(
                    f"rabbitmq-server exited with code {self._process.returncode} before it was ready"
                    + self._describe_log()
                )
            if answers_as(self._ports.amqp, self._node_name):
                return
            if time.monotonic() >= deadline:
                raise RabbitMqServerError(
                    f"rabbitmq-server did not answer on 127.0.0.1:{self._ports.amqp} within "
                    f"{self._start_timeout:g} s" + self._describe_log()
                )
            # Not faster: each probe is an AMQP connection the broker logs.
            time.sleep(0.25)

    def _describe_log(self) -> str:
        tail = self.log_tail()
        return f"\n--- rabbitmq-server log (last {_LOG_TAIL_LINES} lines) ---\n{tail}" if tail else ""



def _kill_groups(groups: list[int]) -> None:
    for group in groups:
        kill_group(group)


def _nobody_listens(port: int) -> bool:
    """Whether the broker can listen on ``port``: like the broker, the check sets SO_REUSEADDR,
    so the TIME_WAIT leftovers of its own earlier connections do not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _port_conflict(message: str) -> bool:
    lowered = message.lower()
    return "eaddrinuse" in lowered or "address already in use" in lowered or "already in use" in lowered
