"""FaultProxy: forwarding, half-close, cuts (open and new connections), loopback-only, cleanup."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from cloudqueue.testing.faultproxy import FaultProxy

pytestmark = pytest.mark.timeout(60)


class _EchoHandler(socketserver.BaseRequestHandler):
    server: _EchoServer

    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
            self.server.endings.append("eof")
        except OSError as error:
            self.server.endings.append(type(error).__name__)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.endings: list[str] = []


@pytest.fixture
def echo() -> Iterator[_EchoServer]:
    server = _EchoServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def proxy(echo: _EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.server_address[1]) as running:
        yield running


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=5)


def roundtrip(proxy: FaultProxy, payload: bytes = b"ping") -> bytes:
    """Send ``payload`` through the proxy and read the echo; raises OSError on a reset."""
    with connect(proxy) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


# -- forwarding ------------------------------------------------------------------------------


def test_forwards_a_large_stream_both_ways(proxy: FaultProxy) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # well over the per-direction buffer limit
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = sock.recv(1 << 20)
            assert chunk, "connection ended early"
            received += chunk
        sender.join(10)
    assert bytes(received) == payload
    # The proxy counts a chunk after handing it on, so its counters may trail
    # the bytes the client already has by a moment.
    deadline = time.monotonic() + 5
    while proxy.bytes_forwarded < 2 * len(payload) and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = proxy.stats()
    assert stats.connections_accepted == 1
    assert stats.bytes_to_target == len(payload)
    assert stats.bytes_to_client == len(payload)
    assert proxy.bytes_forwarded == 2 * len(payload)


def test_half_close_is_passed_on(proxy: FaultProxy, echo: _EchoServer) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)  # the echo server sees EOF, echoes, then closes
        received = b""
        while chunk := sock.recv(1024):
            received += chunk
    assert received == b"last words"
    assert wait_until(lambda: echo.endings == ["eof"])
    assert wait_until(lambda: proxy.stats().active_connections == 0)


def test_counts_connections(proxy: FaultProxy) -> None:
    for _ in range(3):
        assert roundtrip(proxy) == b"ping"
    assert proxy.connections_accepted == 3


def test_target_down_resets_the_client() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        port = unused.getsockname()[1]
        with FaultProxy("127.0.0.1", port) as proxy, pytest.raises(ConnectionError):
            roundtrip(proxy)
            raise ConnectionResetError("ended cleanly instead of with a reset")  # pragma: no cover


# -- cuts ------------------------------------------------------------------------------------


def test_cut_fails_open_connections_on_both_sides(proxy: FaultProxy, echo: _EchoServer) -> None:
    sockets = [connect(proxy) for _ in range(3)]
    try:
        for sock in sockets:
            sock.sendall(b"hello")
            assert sock.recv(1024) == b"hello"
        proxy.cut(0.2)
        for sock in sockets:
            # An abortive close: a reset, not a clean end of stream.
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                sock.sendall(b"more")
                sock.recv(1024)
    finally:
        for sock in sockets:
            sock.close()
    # The server's side was reset too, as after a network failure.
    assert wait_until(lambda: len(echo.endings) == 3)
    assert echo.endings == ["ConnectionResetError"] * 3
    stats = proxy.stats()
    assert stats.connections_cut == 3
    assert stats.active_connections == 0
    assert stats.cuts == 1


def test_new_connections_are_reset_during_a_cut_and_accepted_after(proxy: FaultProxy) -> None:
    started = time.monotonic()
    proxy.cut(0.5)
    assert time.monotonic() - started < 0.5  # cut() does not block for the duration
    assert proxy.is_cut
    with pytest.raises(ConnectionError):
        roundtrip(proxy)
        raise ConnectionResetError("ended cleanly instead of with a reset")  # pragma: no cover
    assert proxy.stats().connections_refused >= 1
    assert proxy.connections_accepted == 0

    assert wait_until(lambda: not proxy.is_cut, timeout=3)
    assert time.monotonic() - started >= 0.5
    assert roundtrip(proxy) == b"ping"
    assert proxy.connections_accepted == 1


def test_cut_now_lasts_until_restore(proxy: FaultProxy) -> None:
    proxy.cut_now()
    time.sleep(0.3)
    assert proxy.is_cut
    with pytest.raises(ConnectionError):
        roundtrip(proxy)
        raise ConnectionResetError("ended cleanly instead of with a reset")  # pragma: no cover
    proxy.restore()
    assert not proxy.is_cut
    assert roundtrip(proxy) == b"ping"


def test_restore_ends_a_timed_cut_early(proxy: FaultProxy) -> None:
    proxy.cut(60)
    proxy.restore()
    assert roundtrip(proxy) == b"ping"


def test_cut_rejects_negative_durations(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.cut(-1)


# -- loopback only ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "2001:db8::1"])
def test_refuses_non_loopback_targets(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(host, 8080)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_refuses_non_loopback_listen_addresses(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("127.0.0.1", 8080, listen_host=host)


def test_accepts_localhost_and_other_loopback_addresses(echo: _EchoServer) -> None:
    with FaultProxy("localhost", echo.server_address[1], listen_host="127.0.0.2") as proxy:
        assert proxy.address[0] == "127.0.0.2"
        assert roundtrip(proxy) == b"ping"


# -- lifecycle and cleanup -------------------------------------------------------------------


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_stop_leaves_no_thread_and_no_socket(echo: _EchoServer) -> None:
    before = _open_fds()
    proxy = FaultProxy("127.0.0.1", echo.server_address[1]).start()
    clients = [connect(proxy) for _ in range(4)]
    for sock in clients:
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
    proxy.cut(0.1)
    with contextlib.suppress(ConnectionError):  # one more during the cut; it may fail at once
        clients.append(connect(proxy))
    proxy.stop()
    proxy.stop()  # idempotent
    for sock in clients:
        sock.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("FaultProxy")]
    # The echo server's handler threads close their sockets on their own schedule; anything
    # the proxy leaked would stay open.
    assert wait_until(lambda: _open_fds() <= before), _open_fds() - before
    with pytest.raises(RuntimeError):
        proxy.cut_now()
    with pytest.raises(RuntimeError):
        proxy.start()


def test_stop_with_live_connections_resets_them(echo: _EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.server_address[1]).start()
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        proxy.stop()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"y")
            sock.recv(1)


def test_idle_proxy_does_not_spin(proxy: FaultProxy) -> None:
    """The loop sleeps in select() while nothing happens: almost no CPU time used."""
    thread_cpu_before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - thread_cpu_before < 0.2


def test_port_is_available_before_use_and_repr(echo: _EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.server_address[1])
    with pytest.raises(RuntimeError):
        _ = proxy.port
    with proxy:
        assert proxy.port > 0
        assert str(proxy.port) in repr(proxy)
        assert proxy.target == ("127.0.0.1", echo.server_address[1])
