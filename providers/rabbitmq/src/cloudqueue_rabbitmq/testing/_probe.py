"""Is *our* broker accepting AMQP connections on a port? One AMQP 0-9-1 handshake step, no client library.

An open port alone could be another program's: the probe sends the protocol header and reads the
broker's ``connection.start``, whose server properties carry ``cluster_name``, which RabbitMQ
sets to its node name. The runner gives every node a unique name, so finding that name in the
answer proves the tests talk to the broker the runner started (and that its listener is up,
which RabbitMQ opens as its last boot step, after the default user exists).
"""

from __future__ import annotations

import socket
import struct

__all__ = ["answers_as"]

_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_METHOD = 1
#: class 10 (connection), method 10 (start)
_CONNECTION_START = struct.pack(">HH", 10, 10)
_FRAME_HEADER = struct.Struct(">BHI")  # type, channel, payload size
#: Enough for any connection.start RabbitMQ sends (about 500 bytes of properties).
_MAX_PAYLOAD = 64 * 1024


def answers_as(port: int, node_name: str, *, timeout: float = 2.0) -> bool:
    """True when 127.0.0.1:``port`` answers the AMQP 0-9-1 header with a ``connection.start``
    naming ``node_name``; False for silence, a refusal, or anyone else's answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(_PROTOCOL_HEADER)
            header = _read_exactly(connection, _FRAME_HEADER.size)
            frame_type, channel, size = _FRAME_HEADER.unpack(header)
            if frame_type != _FRAME_METHOD or channel != 0 or size > _MAX_PAYLOAD:
                return False
            payload = _read_exactly(connection, size)
    except OSError:
        return False
    return payload.startswith(_CONNECTION_START) and node_name.encode("utf-8") in payload


def _read_exactly(connection: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = connection.recv(count - len(chunks))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection mid-frame")
        chunks.extend(chunk)
    return bytes(chunks)
