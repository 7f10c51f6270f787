"""The test broker runner itself (cloudqueue_rabbitmq.testing.RabbitMqServer), driven through
aio-pika: it starts a real broker that clients can use, isolates brokers from each other,
keeps durable data across a restart, and leaves nothing behind when stopped."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from cloudqueue_rabbitmq.testing import SERVER_ENV, RabbitMqServer, RabbitMqServerError

#: Where the Debian package keeps the system broker's state: a test broker never touches it.
_SYSTEM_STATE = (Path("/var/lib/rabbitmq"), Path("/var/log/rabbitmq"), Path("/etc/rabbitmq"))


async def _publish_confirmed(url: str, queue: str, bodies: list[bytes]) -> None:
    """Declare a durable quorum queue and publish ``bodies`` with publisher confirms."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue
            )


async def _drain(url: str, queue: str) -> list[bytes]:
    """Every message now in ``queue`` (acknowledged); [] when it does not exist."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return []
        bodies = []
        # A generous timeout: after a restart a quorum queue answers once it has recovered its
        # log, which can take seconds on a busy machine.
        while (message := await declared.get(fail=False, timeout=60)) is not None:
            bodies.append(message.body)
            await message.ack()
        return bodies


def _snapshot(paths: tuple[Path, ...]) -> dict[str, tuple[int, float]]:
    """Every file and folder under ``paths`` with its size and modification time."""
    seen: dict[str, tuple[int, float]] = {}
    for root in paths:
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")]:
            stat = path.lstat()
            seen[str(path)] = (stat.st_size, stat.st_mtime)
    return seen


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (it holds no port and no file).
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return status != "Z"


def _can_bind(port: int) -> bool:
    """Whether no socket listens on ``port`` (TIME_WAIT leftovers of closed connections aside)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_stop_leaves_no_process_port_file_or_system_state() -> None:
    before = _snapshot(_SYSTEM_STATE)
    home_cookie = Path.home() / ".erlang.cookie"
    had_home_cookie = home_cookie.exists()
    server = RabbitMqServer().start()
    try:
        asyncio.run(_publish_confirmed(server.url, "kept-in-workdir", [b"one"]))
        workdir, ports = server.workdir, server.ports
        pids = [server.pid, server.epmd_pid]
        assert workdir is not None and workdir.is_dir()
        assert all(pid is not None and _process_exists(pid) for pid in pids)
    finally:
        server.stop()

    assert not workdir.exists()
    assert [pid for pid in pids if pid is not None and _process_exists(pid)] == []
    for port in (ports.amqp, ports.dist, ports.epmd):
        assert _can_bind(port), f"port {port} still taken after stop()"
    assert _snapshot(_SYSTEM_STATE) == before
    assert home_cookie.exists() == had_home_cookie
    server.stop()  # idempotent


def _start_in_thread(server: RabbitMqServer, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            server.start()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def two_servers() -> Iterator[tuple[RabbitMqServer, RabbitMqServer]]:
    """Two brokers started at the same time (in parallel, to halve the wait)."""
    first, second = RabbitMqServer(), RabbitMqServer()
    errors: list[BaseException] = []
    threads = [_start_in_thread(first, errors), _start_in_thread(second, errors)]
    for thread in threads:
        thread.join()
    try:
        if errors:
            raise errors[0]
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_two_servers_run_at_once_isolated(two_servers: tuple[RabbitMqServer, RabbitMqServer]) -> None:
    first, second = two_servers
    assert first.node_name != second.node_name
    first_ports = {first.ports.amqp, first.ports.dist, first.ports.epmd}
    assert first_ports.isdisjoint({second.ports.amqp, second.ports.dist, second.ports.epmd})
    assert first.password != second.password

    asyncio.run(_publish_confirmed(first.url, "shared-name", [b"for-first"]))
    asyncio.run(_publish_confirmed(second.url, "shared-name", [b"for-second"]))

    assert asyncio.run(_drain(first.url, "shared-name")) == [b"for-first"]
    assert asyncio.run(_drain(second.url, "shared-name")) == [b"for-second"]
    # Each broker's CLI reaches that broker (its own cookie and epmd), not the other one.
    assert first.node_name in first.ctl("status")
    assert second.node_name in second.ctl("status")


def test_restart_keeps_confirmed_messages_of_durable_queues(
    private_rabbitmq_server: RabbitMqServer, queue_name: str
) -> None:
    server = private_rabbitmq_server
    url_before, pid_before = server.url, server.pid
    asyncio.run(_publish_confirmed(server.url, queue_name, [b"a", b"b", b"c"]))

    server.restart()

    assert server.pid != pid_before
    assert server.url == url_before  # same port and credentials: clients reconnect as they were
    assert asyncio.run(_drain(server.url, queue_name)) == [b"a", b"b", b"c"]


def test_wrong_password_is_refused(rabbitmq_server: RabbitMqServer) -> None:
    wrong = rabbitmq_server.url.replace(rabbitmq_server.password, "not-the-password")
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        asyncio.run(aio_pika.connect(wrong))


def test_repr_and_url_form(rabbitmq_server: RabbitMqServer) -> None:
    assert repr(rabbitmq_server) == f"RabbitMqServer(127.0.0.1:{rabbitmq_server.port})"
    assert rabbitmq_server.password not in repr(rabbitmq_server)
    assert rabbitmq_server.url == (
        f"amqp://cloudqueue:{rabbitmq_server.password}@127.0.0.1:{rabbitmq_server.port}/"
    )
    assert repr(RabbitMqServer()) == "RabbitMqServer(not started)"


def test_missing_rabbitmq_server_names_the_path_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVER_ENV, "/nonexistent/rabbitmq-server")
    expected = r"/nonexistent/rabbitmq-server.*apt-get install rabbitmq-server"
    with pytest.raises(RabbitMqServerError, match=expected):
        RabbitMqServer().start()


def test_explicit_port_in_use_is_refused_clearly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RabbitMqServer(port=port)
        with pytest.raises(RabbitMqServerError, match=rf"127\.0\.0\.1:{port} is already in use"):
            server.start()
        assert server.workdir is None


def test_command_line_prints_the_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    url_file = tmp_path / "url.txt"
    command = [sys.executable, "-m", "cloudqueue_rabbitmq.testing", "run", "--url-file", str(url_file)]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        url = runner.stdout.readline().strip()  # printed once the broker answers
        assert url.startswith("amqp://cloudqueue:") and url_file.read_text().strip() == url
        asyncio.run(_publish_confirmed(url, "cli-queue", [b"via-cli"]))
        assert asyncio.run(_drain(url, "cli-queue")) == [b"via-cli"]
    finally:
        runner.terminate()
        _, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 0, stderr
    assert not url_file.exists()
