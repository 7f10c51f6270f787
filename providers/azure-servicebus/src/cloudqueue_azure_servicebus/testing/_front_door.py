"""Route an HTTP connection: a WebSocket upgrade carries AMQP, anything else is administration.

Both arrive on the broker's one port (plain, or inside TLS), so the decision waits for the
first request's head: an ``Upgrade: websocket`` request becomes an AMQP connection inside
WebSocket framing; any other request goes, bytes untouched, to the ATOM administration surface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._admin_http import HttpConnection
from ._amqp import AmqpConnection
from ._websocket import ByteProtocol, HandshakeError, WebSocketConnection, handshake_response

if TYPE_CHECKING:
    from ._state import BrokerState

MAX_HEAD_BYTES = 16 * 1024


class HttpFrontDoor:
    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self.head = bytearray()
        self.inner: ByteProtocol | None = None
        self.refusal = bytearray()
        self.refused = False

    def feed(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.feed(data)
            return
        if self.refused:
            return
        if not data:
            self.refused = True  # closed before a whole request head arrived
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD_BYTES:
                self._refuse(HandshakeError(
                    "431 Request Header Fields Too Large", f"Request head over {MAX_HEAD_BYTES} bytes."
                ))
            return
        buffered, self.head = bytes(self.head), bytearray()
        method, path, headers = _parse_head(buffered[:end])
        if method == "GET" and "websocket" in headers.get("upgrade", "").lower():
            try:
                answer = handshake_response(path, headers)
            except HandshakeError as err:
                self._refuse(err)
                return
            self.inner = WebSocketConnection(AmqpConnection(self.state), answer)
            rest = buffered[end + 4 :]
            if rest:
                self.inner.feed(rest)
            return
        self.inner = HttpConnection(self.state)
        self.inner.feed(buffered)

    def _refuse(self, err: HandshakeError) -> None:
        self.refused = True
        self.refusal += err.response()

    def output(self) -> bytes:
        return self.inner.output() if self.inner is not None else bytes(self.refusal)

    def sent(self, count: int) -> None:
        if self.inner is not None:
            self.inner.sent(count)
        else:
            del self.refusal[:count]

    @property
    def output_closed(self) -> bool:
        if self.inner is not None:
            return self.inner.output_closed
        return self.refused and not self.refusal

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, path, headers
