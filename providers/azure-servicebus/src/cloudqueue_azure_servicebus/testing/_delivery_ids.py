"""Tolerate the delivery-ids ``azure-servicebus`` really sends, in front of proton-C.

The SDK's pure-Python AMQP session (``_pyamqp/session.py``, ``_outgoing_transfer``) reads
``next_outgoing_id``, writes the transfer and only then increments the counter, without a
lock. When several threads or asyncio tasks send on one session at once (``AutoLockRenewer``
renewing many messages, concurrent ``renew_message_lock`` calls), two transfers can carry the
same delivery-id and the next id is skipped. The service accepts that; proton-C closes the
connection with ``amqp:session:invalid-field`` ("sequencing error").

So this filter sits between the socket and proton's transport and keeps each session's
delivery-ids consecutive on the way in, remembering what the client called each delivery:

* incoming ``transfer``: the first frame of each delivery gets the next id proton expects
  (continuation frames of that delivery get the same id);
* outgoing ``disposition`` (broker as receiver): ids are translated back to the client's,
  split into one frame per consecutive run of client ids;
* outgoing session ``flow``: ``next-incoming-id`` is told in the client's numbering, so the
  client's view of our incoming window stays right.

When the client numbers its transfers correctly, every frame passes through unchanged.
Sessions are keyed by the client's channel; the broker's channel for the same session is
learnt from the ``remote-channel`` of the broker's ``begin``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ._codec import skip_value

_U32 = 0xFFFFFFFF
_FRAME_HEADER = struct.Struct(">IBBH")
_AMQP_FRAME = 0
_BEGIN, _ATTACH, _FLOW, _TRANSFER, _DISPOSITION, _DETACH = 0x11, 0x12, 0x13, 0x14, 0x15, 0x16


@dataclass
class _Session:
    next_id: int  # the next delivery-id proton expects
    client_next: int  # one past the highest delivery-id the client used
    to_client: dict[int, int] = field(default_factory=dict)  # unsettled: proton id -> client id
    # handle -> (our id, client id) of a delivery whose last frame has not come yet
    open_delivery: dict[int, tuple[int, int | None]] = field(default_factory=dict)


@dataclass
class _Performative:
    code: int
    fields: list[bytes]  # raw encoded field values
    payload: bytes  # what follows the performative (a transfer's message bytes)


class DeliveryIdRepair:
    """Byte-stream filter: ``incoming()`` before proton's transport, ``outgoing()`` after it."""

    def __init__(self) -> None:
        self._in = _FrameSplitter()
        self._out = _FrameSplitter()
        self._sessions: dict[int, _Session] = {}  # by the client's channel
        self._client_channel: dict[int, int] = {}  # broker channel -> client channel

    def incoming(self, data: bytes) -> bytes:
        return b"".join(self._incoming_frame(frame) for frame in self._in.feed(data))

    def outgoing(self, data: bytes) -> bytes:
        return b"".join(self._outgoing_frame(frame) for frame in self._out.feed(data))

    # --- client -> broker ------------------------------------------------------------

    def _incoming_frame(self, frame: bytes) -> bytes:
        parsed = _parse(frame)
        if parsed is None:
            return frame
        channel, perf = parsed
        if perf.code == _BEGIN:
            start = _uint(perf.fields, 1) or 0
            self._sessions[channel] = _Session(next_id=start, client_next=start)
            return frame
        session = self._sessions.get(channel)
        if session is None:
            return frame
        if perf.code in (_ATTACH, _DETACH):
            # A handle (re)bound or released: no delivery on it continues.
            session.open_delivery.pop(_uint(perf.fields, 1 if perf.code == _ATTACH else 0) or 0, None)
            return frame
        if perf.code != _TRANSFER:
            return frame
        return self._renumber_transfer(frame, session, perf)

    def _renumber_transfer(self, frame: bytes, session: _Session, perf: _Performative) -> bytes:
        handle = _uint(perf.fields, 0) or 0
        client_id = _uint(perf.fields, 1)
        # Transfer fields (AMQP 1.0 2.7.5): 4 settled, 5 more, 8 resume, 9 aborted.
        more = _bool(perf.fields, 5) and not _bool(perf.fields, 9)  # an aborted delivery ends
        ours, open_client_id = session.open_delivery.get(handle, (None, None))
        if client_id is not None and client_id != open_client_id:
            ours = None  # a new delivery id: whatever was open on this handle is over
        if ours is None:  # the first frame of a delivery
            ours = session.next_id
            session.next_id = (ours + 1) & _U32
            if client_id is None:
                client_id = ours
            session.client_next = max(session.client_next, (client_id + 1) & _U32)
            if not _bool(perf.fields, 4):  # unsettled: a disposition will name it
                session.to_client[ours] = client_id
        if more:
            session.open_delivery[handle] = (ours, client_id)
        else:
            session.open_delivery.pop(handle, None)
        if client_id is None or client_id == ours:
            return frame
        fields = _with_field(perf.fields, 1, _encode_uint(ours))
        return _build(frame, perf.code, fields, perf.payload)

    # --- broker -> client ------------------------------------------------------------

    def _outgoing_frame(self, frame: bytes) -> bytes:
        parsed = _parse(frame)
        if parsed is None:
            return frame
        channel, perf = parsed
        if perf.code == _BEGIN:
            remote = _ushort(perf.fields, 0)
            if remote is not None:
                self._client_channel[channel] = remote
            return frame
        session = self._sessions.get(self._client_channel.get(channel, -1))
        if session is None:
            return frame
        if perf.code == _DISPOSITION and _bool(perf.fields, 0):  # role receiver: the client's ids
            return self._translate_disposition(frame, session, perf)
        if perf.code == _FLOW:
            return self._translate_flow(frame, session, perf)
        return frame

    def _translate_disposition(self, frame: bytes, session: _Session, perf: _Performative) -> bytes:
        first = _uint(perf.fields, 1) or 0
        last = _uint(perf.fields, 2)
        settled = _bool(perf.fields, 3)
        ours = range(first, (first if last is None else last) + 1)
        lookup = session.to_client.pop if settled else session.to_client.get
        theirs = [lookup(i, i) for i in ours]
        if theirs == list(ours):
            return frame
        out = bytearray()
        for run_first, run_last in _runs(theirs):
            fields = _with_field(perf.fields, 1, _encode_uint(run_first))
            fields = _with_field(fields, 2, _encode_uint(run_last))
            out += _build(frame, perf.code, fields, perf.payload)
        return bytes(out)

    def _translate_flow(self, frame: bytes, session: _Session, perf: _Performative) -> bytes:
        ours = _uint(perf.fields, 0)
        if ours is None:
            return frame
        theirs = (ours + session.client_next - session.next_id) & _U32
        if theirs == ours:
            return frame
        return _build(frame, perf.code, _with_field(perf.fields, 0, _encode_uint(theirs)), perf.payload)


class _FrameSplitter:
    """Cuts a byte stream into protocol headers and whole frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while True:
            if self._buffer[:4] == b"AMQP":
                size = 8
            elif len(self._buffer) >= 4:
                size = int(struct.unpack_from(">I", self._buffer)[0])
                if size < 8:  # not AMQP framing: let proton report the error
                    size = len(self._buffer)
            else:
                break
            if size == 0 or len(self._buffer) < size:
                break
            out.append(bytes(self._buffer[:size]))
            del self._buffer[:size]
        return out


def _parse(frame: bytes) -> tuple[int, _Performative] | None:
    """The channel and performative of an AMQP frame, or None for anything else."""
    if frame[:4] == b"AMQP" or len(frame) < 8:
        return None
    _size, doff, ftype, channel = _FRAME_HEADER.unpack_from(frame)
    body = doff * 4
    if ftype != _AMQP_FRAME or len(frame) <= body + 3 or frame[body] != 0x00:
        return None
    if frame[body + 1] == 0x53:
        code, pos = frame[body + 2], body + 3
    elif frame[body + 1] == 0x80:
        code, pos = int(struct.unpack_from(">Q", frame, body + 2)[0]), body + 10
    else:
        return None
    if code not in (_BEGIN, _ATTACH, _FLOW, _TRANSFER, _DISPOSITION, _DETACH):
        return None
    ctor = frame[pos]
    if ctor == 0x45:
        count, items = 0, pos + 1
    elif ctor == 0xC0:
        count, items = frame[pos + 2], pos + 3
    elif ctor == 0xD0:
        count, items = int(struct.unpack_from(">I", frame, pos + 5)[0]), pos + 9
    else:
        return None
    fields: list[bytes] = []
    for _ in range(count):
        end = skip_value(frame, items)
        fields.append(frame[items:end])
        items = end
    return channel, _Performative(code, fields, frame[items:])


def _build(frame: bytes, code: int, fields: list[bytes], payload: bytes) -> bytes:
    """The same frame (header, channel) with a re-encoded performative."""
    doff = frame[4]
    items = b"".join(fields)
    body = b"\x00\x53" + bytes([code]) + b"\xd0" + struct.pack(">II", len(items) + 4, len(fields)) + items
    head = frame[4 : doff * 4]
    return struct.pack(">I", 4 + len(head) + len(body) + len(payload)) + head + body + payload


def _with_field(fields: list[bytes], index: int, value: bytes) -> list[bytes]:
    out = list(fields)
    while len(out) <= index:
        out.append(b"\x40")
    out[index] = value
    return out


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in ids:
        if runs and runs[-1][1] + 1 == i:
            runs[-1] = (runs[-1][0], i)
        elif not runs or not runs[-1][0] <= i <= runs[-1][1]:  # a repeated id is named once
            runs.append((i, i))
    return runs


def _encode_uint(value: int) -> bytes:
    return b"\x70" + struct.pack(">I", value & _U32)


def _uint(fields: list[bytes], index: int) -> int | None:
    raw = fields[index] if index < len(fields) else b"\x40"
    if raw[0] == 0x43:
        return 0
    if raw[0] == 0x52:
        return raw[1]
    if raw[0] == 0x70:
        return int(struct.unpack_from(">I", raw, 1)[0])
    return None


def _ushort(fields: list[bytes], index: int) -> int | None:
    raw = fields[index] if index < len(fields) else b"\x40"
    return int(struct.unpack_from(">H", raw, 1)[0]) if raw[0] == 0x60 else None


def _bool(fields: list[bytes], index: int) -> bool:
    raw = fields[index] if index < len(fields) else b"\x40"
    return raw[0] == 0x41 or (raw[0] == 0x56 and raw[1] == 0x01)
