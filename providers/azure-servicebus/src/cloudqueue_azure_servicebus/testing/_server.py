"""The socket loop: one thread, a selector, protocol sniffing on the first bytes.

An AMQP connection opens with the protocol header ``AMQP``; a TLS handshake record
starts HTTPS; anything that starts like an HTTP request is plain HTTP. HTTP (plain or
inside TLS) is either a WebSocket upgrade carrying AMQP or the administration (ATOM)
surface (``_front_door``). All share the port, as the SDK uses the Endpoint's host and
port when the connection string has ``UseDevelopmentEmulator=true``.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading

from ._amqp import AmqpConnection
from ._front_door import HttpFrontDoor
from ._state import BrokerState
from ._timers import now_ms
from ._tls import TlsContext, TlsHttpConnection
from ._websocket import ByteProtocol

log = logging.getLogger(__name__)

_HTTP_METHODS = (b"GET ", b"PUT ", b"POST", b"DELE", b"HEAD", b"PATC", b"OPTI")


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.head = b""
        self.proto: ByteProtocol | None = None
        self.read_closed = False


class SocketServer:
    def __init__(self, state: BrokerState, host: str, port: int) -> None:
        self.state = state
        self.listener = socket.create_server((host, port), reuse_port=False)
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.clients: dict[socket.socket, _Client] = {}
        self.tls = TlsContext()
        self._stopping = threading.Event()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    def serve(self) -> None:
        try:
            while not self._stopping.is_set():
                deadline = self.state.timers.next_deadline()
                timeout = None if deadline is None else max(0.0, (deadline - now_ms()) / 1000)
                events = self.selector.select(timeout if timeout is None else min(timeout, 1.0))
                with self.state.lock:
                    for key, mask in events:
                        if key.data is None:
                            self._accept()
                        elif key.data == "wake":
                            self._drain_wake()
                        elif mask & selectors.EVENT_READ and not key.data.read_closed:
                            try:
                                self._read(key.data)
                            except Exception:  # one bad client must not stop the broker
                                log.exception("dropping connection after an error")
                                self._drop(key.data)
                    self.state.timers.run_due()
                    for client in list(self.clients.values()):
                        self._flush(client)
        finally:
            self._close_all()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _accept(self) -> None:
        try:
            sock, _addr = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = _Client(sock)
        self.clients[sock] = client
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if client.proto is None:
            if not data:
                self._drop(client)
                return
            client.head += data
            if len(client.head) < 4:
                return
            if client.head.startswith(b"AMQP"):
                client.proto = AmqpConnection(self.state)
            elif client.head[:4] in _HTTP_METHODS:
                client.proto = HttpFrontDoor(self.state)
            elif client.head[0] == 0x16:  # TLS handshake record: HTTPS administration
                client.proto = TlsHttpConnection(self.state, self.tls)
            else:
                self._drop(client)
                return
            data, client.head = client.head, b""
        if not data:
            client.read_closed = True
        client.proto.feed(data)

    def _flush(self, client: _Client) -> None:
        proto = client.proto
        if proto is None:
            return
        while True:
            out = proto.output()
            if not out:
                break
            try:
                count = client.sock.send(out)
            except BlockingIOError:
                break
            except OSError:
                self._drop(client)
                return
            proto.sent(count)
            if count < len(out):
                break
        want_write = bool(proto.output())
        if proto.output_closed or (client.read_closed and not want_write):
            self._drop(client)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
        if client.read_closed:
            events = selectors.EVENT_WRITE if want_write else selectors.EVENT_READ
        self.selector.modify(client.sock, events, client)

    def _drop(self, client: _Client) -> None:
        if self.clients.pop(client.sock, None) is None:
            return
        if client.proto is not None:
            client.proto.shutdown()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        client.sock.close()

    def _close_all(self) -> None:
        with self.state.lock:
            for client in list(self.clients.values()):
                self._drop(client)
        self.selector.close()
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self.tls.cleanup()
