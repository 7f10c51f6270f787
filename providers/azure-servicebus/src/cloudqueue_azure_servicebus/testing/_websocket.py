"""AMQP over WebSockets, server side (RFC 6455), as ``TransportType.AmqpOverWebsocket`` uses it.

The SDK opens ``ws://`` (emulator connection strings) or ``wss://`` (``custom_endpoint_address``)
at the path ``/$servicebus/websocket`` with the subprotocol ``AMQPWSB10`` and then writes each
AMQP frame as one binary WebSocket message. AMQP is a byte stream, so message boundaries do not
matter here: every binary payload, fragmented or not, is fed straight to the AMQP connection, and
AMQP's output goes back as binary messages.

Written here rather than taken from a package because the broker's socket loop is sans-IO
(``feed``/``output``/``sent``) and the server side needs only the handshake answer, unmasking,
ping/pong and the close handshake: about as much code as an adapter to a library would be, and no
extra dependency for everyone who installs the provider.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Protocol

UPGRADE_PATH = "/$servicebus/websocket"
SUBPROTOCOL = "AMQPWSB10"
_ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
# Generous next to the broker's 256 KiB AMQP frames; a bigger message is refused (1009).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_NORMAL, _PROTOCOL_ERROR, _UNSUPPORTED_DATA, _TOO_BIG = 1000, 1002, 1003, 1009


class ByteProtocol(Protocol):
    """What the socket loop drives (see ``_server``)."""

    def feed(self, data: bytes) -> None: ...
    def output(self) -> bytes: ...
    def sent(self, count: int) -> None: ...
    @property
    def output_closed(self) -> bool: ...
    def shutdown(self) -> None: ...


class HandshakeError(Exception):
    def __init__(self, status: str, reason: str, extra_headers: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra_headers = extra_headers

    def response(self) -> bytes:
        body = self.reason.encode()
        return (
            f"HTTP/1.1 {self.status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n{self.extra_headers}Connection: close\r\n\r\n"
        ).encode() + body


def handshake_response(path: str, headers: dict[str, str]) -> bytes:
    """The ``101 Switching Protocols`` answer to an upgrade request, or HandshakeError."""
    if path.split("?", 1)[0] != UPGRADE_PATH:
        raise HandshakeError("404 Not Found", f"The WebSocket endpoint is {UPGRADE_PATH}, not {path}.")
    if "websocket" not in headers.get("upgrade", "").lower():
        raise HandshakeError("400 Bad Request", "Expected 'Upgrade: websocket'.")
    if headers.get("sec-websocket-version", "") != "13":
        raise HandshakeError(
            "426 Upgrade Required", "Only WebSocket version 13 is supported.", "Sec-WebSocket-Version: 13\r\n"
        )
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise HandshakeError("400 Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64.") from None
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    if SUBPROTOCOL not in offered:
        raise HandshakeError("400 Bad Request", f"The WebSocket subprotocol must be {SUBPROTOCOL}.")
    accept = base64.b64encode(hashlib.sha1((key + _ACCEPT_GUID).encode()).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    ).encode()


class WebSocketConnection:
    """Carries an inner byte protocol (an AMQP connection) in WebSocket binary messages."""

    def __init__(self, inner: ByteProtocol, handshake: bytes) -> None:
        self.inner = inner
        self.incoming = bytearray()
        self.pending_out = bytearray(handshake)
        self.in_binary_message = False
        self.message_bytes = 0
        self.close_sent = False
        self.failed = False  # stop reading: the peer broke the protocol or closed

    # --- byte pumping --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            self.inner.feed(b"")
            return
        if self.failed:
            return
        self.incoming += data
        while not self.failed:
            frame = self._next_frame()
            if frame is None:
                break
            self._on_frame(*frame)

    def output(self) -> bytes:
        if not self.close_sent:
            data = self.inner.output()
            if data:
                self.pending_out += _frame(_BINARY, data)
                self.inner.sent(len(data))
            if self.inner.output_closed:
                self._send_close(_NORMAL, "")
        return bytes(self.pending_out)

    def sent(self, count: int) -> None:
        del self.pending_out[:count]

    @property
    def output_closed(self) -> bool:
        return self.close_sent and not self.pending_out

    def shutdown(self) -> None:
        self.inner.shutdown()

    # --- frames --------------------------------------------------------------------------

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self.incoming
        if len(buf) < 2:
            return None
        fin, rsv, opcode = bool(buf[0] & 0x80), buf[0] & 0x70, buf[0] & 0x0F
        masked, length, pos = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from(">H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from(">Q", buf, 2)[0], 10
        problem = _header_problem(rsv, masked, length)
        if problem is not None:
            self._fail(*problem)
            return None
        end = pos + 4 + length
        if len(buf) < end:
            return None
        payload = _unmask(bytes(buf[pos + 4 : end]), bytes(buf[pos : pos + 4]))
        del buf[:end]
        return fin, opcode, payload

    def _on_frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode >= _CLOSE:
            if not fin or len(payload) > 125:
                self._fail(_PROTOCOL_ERROR, "Control frames must be whole and at most 125 bytes.")
            elif opcode == _PING:
                self.pending_out += _frame(_PONG, payload)
            elif opcode == _CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else _NORMAL
                self.failed = True
                self._send_close(code if 1000 <= code < 5000 else _NORMAL, "")
                self.inner.feed(b"")  # the AMQP peer is gone
            elif opcode != _PONG:
                self._fail(_PROTOCOL_ERROR, f"Unknown control opcode {opcode:#x}.")
            return
        if opcode == _TEXT:
            self._fail(_UNSUPPORTED_DATA, "AMQP over WebSocket uses binary messages, not text.")
            return
        if opcode == _BINARY and self.in_binary_message:
            self._fail(_PROTOCOL_ERROR, "A new message started before the previous one ended.")
            return
        if opcode == _CONTINUATION and not self.in_binary_message:
            self._fail(_PROTOCOL_ERROR, "A continuation frame without a message to continue.")
            return
        if opcode not in (_BINARY, _CONTINUATION):
            self._fail(_PROTOCOL_ERROR, f"Unknown data opcode {opcode:#x}.")
            return
        self.message_bytes = len(payload) + (self.message_bytes if opcode == _CONTINUATION else 0)
        if self.message_bytes > MAX_MESSAGE_BYTES:
            self._fail(_TOO_BIG, f"Message over {MAX_MESSAGE_BYTES} bytes.")
            return
        self.in_binary_message = not fin
        if payload:
            self.inner.feed(payload)

    def _fail(self, code: int, reason: str) -> None:
        self.failed = True
        self._send_close(code, reason)
        self.inner.feed(b"")

    def _send_close(self, code: int, reason: str) -> None:
        if not self.close_sent:
            self.close_sent = True
            self.pending_out += _frame(_CLOSE, struct.pack(">H", code) + reason.encode()[:120])


def _header_problem(rsv: int, masked: bool, length: int) -> tuple[int, str] | None:
    """The close code and reason a frame header deserves, or None when it is acceptable."""
    if rsv:
        return _PROTOCOL_ERROR, "No extension was negotiated: RSV bits must be 0."
    if not masked:
        return _PROTOCOL_ERROR, "Client frames must be masked (RFC 6455 section 5.1)."
    if length > MAX_MESSAGE_BYTES:
        return _TOO_BIG, f"Frame of {length} bytes; the limit is {MAX_MESSAGE_BYTES}."
    return None


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked (server-to-client) frame with FIN set."""
    size = len(payload)
    if size < 126:
        head = struct.pack(">BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, size)
    return head + payload


def _unmask(data: bytes, key: bytes) -> bytes:
    size = len(data)
    if not size:
        return b""
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")
