"""A loopback TCP proxy that can cut every connection at once, for reliability tests.

Point an SDK client at the proxy instead of its local server, then call :meth:`FaultProxy.cut`
to simulate a network failure in the middle of a run::

    with FaultProxy("127.0.0.1", server_port) as proxy:
        client = make_client(f"http://127.0.0.1:{proxy.port}")
        ...
        proxy.cut(2.0)   # every open connection is reset; new ones are reset for 2 s
        ...              # the client must recover once the 2 s are over

During a cut, every connection open through the proxy is closed abortively on both sides (an
RST, as after a network failure: reads and writes fail with ``ConnectionResetError`` or
``BrokenPipeError``, not a clean end of stream). New connections are accepted by the kernel and
reset at once: a client sees either its connect or its first read or write fail with
``ConnectionResetError`` (which one depends on timing). The proxy
keeps its listening socket throughout, so its port never changes hands.

Only loopback addresses are allowed, for both the listening and the target side: this is a test
tool, never a way to relay traffic off the machine.

One thread runs a :mod:`selectors` loop for all connections; it sleeps until there is I/O, a
command or the end of a timed cut (no polling). Each direction buffers at most ``buffer_limit``
bytes and stops reading from a side whose peer does not drain, so a slow reader slows the writer
down as it would over a real network.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import queue
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["FaultProxy", "FaultProxyStats"]

_CHUNK = 64 * 1024
_COMMAND_TIMEOUT = 10.0
_LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


@dataclass(frozen=True)
class FaultProxyStats:
    """A snapshot of a :class:`FaultProxy`'s counters."""

    connections_accepted: int
    """Connections accepted and forwarded to the target (not counting those reset by a cut)."""
    connections_refused: int
    """Connections reset on arrival because a cut was in force."""
    connections_cut: int
    """Open connections closed abortively by cuts."""
    active_connections: int
    """Connections open right now."""
    bytes_to_target: int
    """Bytes written to the target (sent by clients)."""
    bytes_to_client: int
    """Bytes written back to clients (sent by the target)."""
    cuts: int
    """How many times :meth:`FaultProxy.cut` or :meth:`FaultProxy.cut_now` was called."""

    @property
    def bytes_forwarded(self) -> int:
        """Bytes forwarded in both directions."""
        return self.bytes_to_target + self.bytes_to_client


class _Connection:
    """One client connection and its connection to the target."""

    __slots__ = (
        "client",
        "client_reading",
        "client_write_shut",
        "connecting",
        "target",
        "target_reading",
        "target_write_shut",
        "to_client",
        "to_target",
    )

    def __init__(self, client: socket.socket, target: socket.socket) -> None:
        self.client = client
        self.target = target
        self.to_target = bytearray()
        self.to_client = bytearray()
        self.connecting = True
        # False once that side has sent its end of stream (FIN).
        self.client_reading = True
        self.target_reading = True
        # True once the end of stream has been passed on to that side.
        self.client_write_shut = False
        self.target_write_shut = False

    def finished(self) -> bool:
        return (
            not self.client_reading and not self.target_reading and not self.to_client and not self.to_target
        )


class FaultProxy:
    """A TCP forwarder on loopback whose connections can be cut on demand.

    Args:
        target_host: the server to forward to; must be a loopback address or a name that
            resolves only to loopback addresses (``"localhost"``).
        target_port: the server's port.
        listen_host: where clients connect; loopback only.
        listen_port: ``0`` (default) picks a free port; read it from :attr:`port`.
        buffer_limit: bytes buffered per direction before the proxy stops reading that side.

    Raises:
        ValueError: an address is not loopback.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        *,
        buffer_limit: int = 256 * 1024,
    ) -> None:
        self._target = _loopback_sockaddr(target_host, target_port, "target")
        self._listen = _loopback_sockaddr(listen_host, listen_port, "listen")
        self._buffer_limit = buffer_limit
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()
        self._connections: set[_Connection] = set()
        self._interest: dict[socket.socket, int] = {}
        self._cut = False
        self._cut_until: float | None = None
        self._stopping = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._lock = threading.Lock()  # guards the counters below, read by other threads
        self._accepted = 0
        self._refused = 0
        self._dropped = 0
        self._bytes_to_target = 0
        self._bytes_to_client = 0
        self._cuts = 0

    # -- public API ----------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` that clients connect to; valid once started."""
        if self._listener is None:
            raise RuntimeError("FaultProxy is not started")
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        """The port clients connect to; valid once started."""
        return self.address[1]

    @property
    def target(self) -> tuple[str, int]:
        """``(host, port)`` of the server the proxy forwards to."""
        host, port = self._target[2][:2]
        return str(host), int(port)

    @property
    def is_cut(self) -> bool:
        """True while a cut is in force."""
        return self._cut

    def start(self) -> Self:
        """Bind the listening socket and start forwarding in a background thread."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("a FaultProxy can be started only once")
        family, _, sockaddr = self._listen
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(sockaddr)
            listener.listen(128)
            listener.setblocking(False)
            selector = selectors.DefaultSelector()
            wake_reader, wake_writer = socket.socketpair()
        except BaseException:
            listener.close()
            raise
        wake_reader.setblocking(False)
        wake_writer.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, None)
        selector.register(wake_reader, selectors.EVENT_READ, None)
        self._listener, self._selector = listener, selector
        self._wake_reader, self._wake_writer = wake_reader, wake_writer
        self._thread = threading.Thread(
            target=self._run, name=f"FaultProxy:{self.port}->{self.target[1]}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket, and join the thread; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            self._stopping = True
            self._wake()
            thread.join(_COMMAND_TIMEOUT)
        if thread.is_alive():  # pragma: no cover - the loop never blocks outside select()
            raise RuntimeError("FaultProxy thread did not stop")
        self._thread = None

    def cut(self, seconds: float) -> None:
        """Cut every connection now and reset new ones for ``seconds``, then accept again.

        Returns as soon as the open connections are closed; the proxy accepts again by itself
        when ``seconds`` have passed. A new cut during a cut restarts the countdown.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._call(lambda: self._apply_cut(time.monotonic() + seconds))

    def cut_now(self) -> None:
        """Cut every connection now and reset new ones until :meth:`restore`."""
        self._call(lambda: self._apply_cut(None))

    def restore(self) -> None:
        """End the cut in force (if any): new connections are forwarded again."""
        self._call(self._end_cut)

    def stats(self) -> FaultProxyStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return FaultProxyStats(
                connections_accepted=self._accepted,
                connections_refused=self._refused,
                connections_cut=self._dropped,
                active_connections=len(self._connections),
                bytes_to_target=self._bytes_to_target,
                bytes_to_client=self._bytes_to_client,
                cuts=self._cuts,
            )

    @property
    def connections_accepted(self) -> int:
        """Connections accepted and forwarded so far."""
        return self.stats().connections_accepted

    @property
    def bytes_forwarded(self) -> int:
        """Bytes forwarded so far, both directions."""
        return self.stats().bytes_forwarded

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"port {self.port}" if self._listener and not self._stopped else "not running"
        return f"<FaultProxy {where} -> {self.target[0]}:{self.target[1]}>"

    # -- commands from other threads -----------------------------------------------------------

    def _call(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the loop thread and wait for it, so its effect is visible after."""
        thread = self._thread
        if thread is None or self._stopped or self._stopping or not thread.is_alive():
            raise RuntimeError(f"FaultProxy is not running (failure: {self._failure!r})")
        done = threading.Event()
        self._commands.put((action, done))
        self._wake()
        if not done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError(f"FaultProxy did not respond (failure: {self._failure!r})")

    def _wake(self) -> None:
        if self._wake_writer is not None:
            # A full wake-up pipe already guarantees a wake-up.
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_writer.send(b"\0")

    def _apply_cut(self, until: float | None) -> None:
        self._cut, self._cut_until = True, until
        with self._lock:
            self._cuts += 1
        for connection in list(self._connections):
            self._close(connection, abort=True, cut=True)

    def _end_cut(self) -> None:
        self._cut, self._cut_until = False, None

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping:
                timeout = None
                if self._cut_until is not None:
                    timeout = max(0.0, self._cut_until - time.monotonic())
                for key, events in self._selector.select(timeout):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_reader:
                        self._drain_commands()
                    elif key.data in self._connections:  # may have closed earlier in the batch
                        self._service(key.data, key.fileobj, events)  # type: ignore[arg-type]
                if self._cut_until is not None and time.monotonic() >= self._cut_until:
                    self._end_cut()
        except BaseException as error:  # pragma: no cover - a bug; keep it for _call()'s message
            self._failure = error
            raise
        finally:
            self._shutdown()

    def _drain_commands(self) -> None:
        assert self._wake_reader is not None
        with contextlib.suppress(BlockingIOError):
            while self._wake_reader.recv(4096):
                pass
        while True:
            try:
                action, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            finally:
                done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(64):  # bounded, so a connection storm cannot starve other sockets
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                    return
                raise
            if self._cut:
                with self._lock:  # counted first: the client may look as soon as it is reset
                    self._refused += 1
                _abort(client)
                continue
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        family, _, sockaddr = self._target
        client.setblocking(False)
        target = socket.socket(family, socket.SOCK_STREAM)
        target.setblocking(False)
        for side in (client, target):
            side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = target.connect_ex(sockaddr)
        connection = _Connection(client, target)
        with self._lock:
            self._connections.add(connection)
            self._accepted += 1
        if result not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            # Target down: the client sees a reset, as it would if the server refused it.
            self._close(connection, abort=True)
            return
        self._update_interest(connection)

    def _service(self, connection: _Connection, sock: socket.socket, events: int) -> None:
        try:
            if sock is connection.target and connection.connecting:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self._close(connection, abort=True)
                    return
                connection.connecting = False
            if events & selectors.EVENT_WRITE:
                self._write(connection, sock)
            if events & selectors.EVENT_READ:
                self._read(connection, sock)
            self._pass_on_end_of_stream(connection)
        except OSError:
            # A reset or broken pipe on one side: pass the failure on to the other side.
            self._close(connection, abort=True)
            return
        if connection.finished():
            self._close(connection, abort=False)
        else:
            self._update_interest(connection)

    def _read(self, connection: _Connection, sock: socket.socket) -> None:
        data = sock.recv(_CHUNK)
        from_client = sock is connection.client
        if not data:
            if from_client:
                connection.client_reading = False
            else:
                connection.target_reading = False
        elif from_client:
            connection.to_target += data
        else:
            connection.to_client += data

    def _write(self, connection: _Connection, sock: socket.socket) -> None:
        to_target = sock is connection.target
        buffer = connection.to_target if to_target else connection.to_client
        if not buffer:
            return
        sent = sock.send(buffer)
        del buffer[:sent]
        with self._lock:
            if to_target:
                self._bytes_to_target += sent
            else:
                self._bytes_to_client += sent

    def _pass_on_end_of_stream(self, connection: _Connection) -> None:
        """Half-close: once one side has ended and its data is delivered, end the other side."""
        if connection.connecting:
            return
        if not (connection.client_reading or connection.to_target or connection.target_write_shut):
            connection.target_write_shut = True
            connection.target.shutdown(socket.SHUT_WR)
        if not (connection.target_reading or connection.to_client or connection.client_write_shut):
            connection.client_write_shut = True
            connection.client.shutdown(socket.SHUT_WR)

    def _update_interest(self, connection: _Connection) -> None:
        limit = self._buffer_limit
        client_events = 0
        if connection.client_reading and len(connection.to_target) < limit:
            client_events |= selectors.EVENT_READ
        if connection.to_client:
            client_events |= selectors.EVENT_WRITE
        if connection.connecting:
            target_events = selectors.EVENT_WRITE  # writable = the connect has completed
        else:
            target_events = 0
            if connection.target_reading and len(connection.to_client) < limit:
                target_events |= selectors.EVENT_READ
            if connection.to_target:
                target_events |= selectors.EVENT_WRITE
        self._register(connection.client, client_events, connection)
        self._register(connection.target, target_events, connection)

    def _register(self, sock: socket.socket, events: int, connection: _Connection) -> None:
        assert self._selector is not None
        current = self._interest.get(sock, 0)
        if events == current:
            return
        if events == 0:
            self._selector.unregister(sock)
            del self._interest[sock]
        elif current == 0:
            self._selector.register(sock, events, connection)
            self._interest[sock] = events
        else:
            self._selector.modify(sock, events, connection)
            self._interest[sock] = events

    def _close(self, connection: _Connection, *, abort: bool, cut: bool = False) -> None:
        assert self._selector is not None
        for sock in (connection.client, connection.target):
            if self._interest.pop(sock, 0):
                self._selector.unregister(sock)
            if abort:
                _abort(sock)
            else:
                sock.close()
        with self._lock:
            self._connections.discard(connection)
            if cut:
                self._dropped += 1

    def _shutdown(self) -> None:
        """Release everything; runs on the loop thread as it exits."""
        for connection in list(self._connections):
            self._close(connection, abort=True)
        # Release waiters of commands that arrived too late to run.
        while True:
            try:
                _, done = self._commands.get_nowait()
            except queue.Empty:
                break
            done.set()
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            if sock is not None:
                sock.close()
        if self._selector is not None:
            self._selector.close()


def _abort(sock: socket.socket) -> None:
    """Close with an RST, as a network failure would, rather than an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
    sock.close()


def _loopback_sockaddr(
    host: str, port: int, role: str
) -> tuple[socket.AddressFamily, str, tuple[str, int] | tuple[str, int, int, int]]:
    """Resolve ``host`` and insist that every address it names is a loopback address."""
    if not 0 <= port <= 65535:
        raise ValueError(f"FaultProxy {role} port out of range: {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"FaultProxy {role} host {host!r} does not resolve: {error}") from None
    addresses = [(info[0], info[4]) for info in infos if info[0] in _FAMILIES]
    outside = sorted({str(sockaddr[0]) for _, sockaddr in addresses if not _is_loopback(sockaddr)})
    if not addresses or outside:
        raise ValueError(
            f"FaultProxy only works on loopback (127.0.0.0/8, ::1): {role} host {host!r} "
            f"resolves to {', '.join(outside) or 'nothing usable'}"
        )
    family, sockaddr = addresses[0]
    return family, host, sockaddr  # type: ignore[return-value]


_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _is_loopback(sockaddr: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]) -> bool:
    try:
        return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        return False
