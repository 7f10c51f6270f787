"""Running the server: as a process, in-process, and the loopback-only rule."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import pubsub_v1

from cloudqueue_pubsub.testing import PubSubServer

SOURCE = Path(__file__).resolve().parents[1] / "src"


def start_cli(*arguments: str) -> subprocess.Popen[str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SOURCE), environment.get("PYTHONPATH")])
    )
    return subprocess.Popen(
        [sys.executable, "-m", "cloudqueue_pubsub.testing", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_clients_and_stops_on_signal(
    monkeypatch: pytest.MonkeyPatch, stop_signal: signal.Signals
) -> None:
    process = start_cli("--port", "0")
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0

        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", address)
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name="projects/cli/topics/from-cli")
        assert publisher.get_topic(topic="projects/cli/topics/from-cli").name.endswith("from-cli")
        publisher.transport.grpc_channel.close()

        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_refuses_a_non_loopback_host() -> None:
    process = start_cli("--host", "0.0.0.0", "--port", "0")
    _, error = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "loopback" in error


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        PubSubServer(host=host)


def test_start_stop_and_properties() -> None:
    server = PubSubServer()
    with pytest.raises(RuntimeError):
        _ = server.port
    server.start()
    try:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert server.address == f"127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError):
            server.start()
    finally:
        server.stop()
    server.stop()  # stopping twice is harmless


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv6_loopback() -> None:
    if not _ipv6_loopback_available():
        # Where the machine has no ::1, asking for it is a clear error, not a hang.
        with pytest.raises(OSError):
            PubSubServer(host="::1").start()
        return
    server = PubSubServer(host="::1").start()
    try:
        assert server.address == f"[::1]:{server.port}"
    finally:
        server.stop()


def test_port_in_use_is_an_error() -> None:
    with PubSubServer() as first, pytest.raises(OSError):
        PubSubServer(port=first.port).start()


def test_stop_ends_waiting_pulls_and_open_streams_promptly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from google.api_core import exceptions

    server = PubSubServer(pull_wait_seconds=30).start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name="projects/p/topics/stopping").name
    subscription = subscriber.create_subscription(
        name="projects/p/subscriptions/stopping", topic=topic, ack_deadline_seconds=10
    ).name
    future = subscriber.subscribe(subscription, lambda message: message.ack())
    outcome: list[object] = []

    def waiting_pull() -> None:
        try:
            subscriber.pull(subscription=subscription, max_messages=1, timeout=60, retry=None)
        except exceptions.GoogleAPICallError as error:
            outcome.append(error)

    thread = threading.Thread(target=waiting_pull)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    thread.join(timeout=10)
    assert time.monotonic() - started < 3
    assert outcome and isinstance(outcome[0], exceptions.ServiceUnavailable)
    future.cancel()
    subscriber.close()
    publisher.transport.grpc_channel.close()
