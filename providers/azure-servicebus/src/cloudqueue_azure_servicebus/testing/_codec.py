"""Raw AMQP 1.0 encoding helpers: split a bare message into its sections.

The broker keeps message bodies as the exact bytes the sender produced and only
re-encodes the small sections it has to change (header, annotations). That keeps
delivery cheap and byte-faithful, and it is how batches are recognised: proton-C
does not expose a delivery's message format, so a batch (format 0x80013700) is
recognised by layout -- every body section is a ``data`` section whose payload is
itself an encoded message (starts with a section descriptor ``0x00 0x53``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from proton import Data

# Section descriptor codes (AMQP 1.0 part 3.2).
HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78
BODY_CODES = frozenset({DATA, AMQP_SEQUENCE, AMQP_VALUE})


class CodecError(ValueError):
    """The bytes are not a well-formed AMQP message."""


def skip_value(buf: bytes, pos: int) -> int:
    """Return the offset just past the encoded AMQP value starting at ``pos``."""
    code = buf[pos]
    pos += 1
    if code == 0x00:  # described: descriptor then value
        pos = skip_value(buf, pos)
        return skip_value(buf, pos)
    width = code & 0xF0
    if width == 0x40:
        return pos
    fixed = {0x50: 1, 0x60: 2, 0x70: 4, 0x80: 8, 0x90: 16}.get(width)
    if fixed is not None:
        return pos + fixed
    if width in (0xA0, 0xC0, 0xE0):
        return pos + 1 + buf[pos]
    if width in (0xB0, 0xD0, 0xF0):
        return pos + 4 + int(struct.unpack_from(">I", buf, pos)[0])
    raise CodecError(f"unknown AMQP constructor 0x{code:02x}")


def _section_code(buf: bytes, pos: int) -> int:
    # Sections are described by a small ulong (0x53) or a full ulong (0x80).
    if buf[pos] != 0x00:
        raise CodecError("message section is not a described type")
    if buf[pos + 1] == 0x53:
        return buf[pos + 2]
    if buf[pos + 1] == 0x80:
        return int(struct.unpack_from(">Q", buf, pos + 2)[0])
    raise CodecError("unsupported section descriptor")


def split_sections(buf: bytes) -> list[tuple[int, bytes]]:
    """Split an encoded bare/annotated message into ``(code, raw_bytes)`` sections."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    end = len(buf)
    try:
        while pos < end:
            code = _section_code(buf, pos)
            nxt = skip_value(buf, pos)
            out.append((code, buf[pos:nxt]))
            pos = nxt
    except (IndexError, struct.error) as exc:
        raise CodecError("truncated AMQP message") from exc
    if pos != end:
        raise CodecError("trailing bytes after AMQP message")
    return out


def data_payload(section: bytes) -> bytes:
    """Return the binary payload of a raw ``data`` section."""
    ctor = section[3]
    if ctor == 0xA0:
        return section[5 : 5 + section[4]]
    if ctor == 0xB0:
        size = struct.unpack_from(">I", section, 4)[0]
        return section[8 : 8 + size]
    raise CodecError("data section without binary value")


def split_batch(buf: bytes) -> list[bytes] | None:
    """Return the inner messages if ``buf`` is laid out as a Service Bus batch, else None.

    A batch has at least one body section, all of them ``data`` sections whose payload
    begins with a section descriptor. A single message whose data bodies happen to look
    like encoded messages would be misread as a batch: a documented limit.
    """
    bodies = [raw for code, raw in split_sections(buf) if code in BODY_CODES]
    if not bodies:
        return None
    inner: list[bytes] = []
    for raw in bodies:
        if _section_code(raw, 0) != DATA:
            return None
        payload = data_payload(raw)
        if len(payload) < 3 or payload[0] != 0x00 or payload[1] != 0x53:
            return None
        inner.append(bytes(payload))
    return inner


def decode_value(raw: bytes) -> Any:
    """Decode one encoded AMQP value to Python objects (proton's mapping)."""
    data = Data()
    data.decode(raw)
    data.rewind()
    data.next()
    return data.get_object()


def encode_value(value: Any) -> bytes:
    data = Data()
    data.put_object(value)
    return bytes(data.encode())


@dataclass
class Sections:
    """A message split into sections; values decoded lazily where the broker needs them."""

    header: list[Any] | None = None
    message_annotations: dict[Any, Any] = field(default_factory=dict)
    properties: list[Any] | None = None
    application_properties: dict[Any, Any] | None = None
    # Properties, body and footer sections verbatim, in wire order.
    raw_properties: bytes = b""
    raw_application_properties: bytes = b""
    raw_rest: bytes = b""


def parse_message(buf: bytes) -> Sections:
    """Parse an encoded message, keeping the body bytes as they are."""
    sec = Sections()
    rest: list[bytes] = []
    for code, raw in split_sections(buf):
        if code == HEADER:
            sec.header = list(decode_value(raw).value or [])
        elif code == DELIVERY_ANNOTATIONS:
            continue  # per-hop: not kept
        elif code == MESSAGE_ANNOTATIONS:
            sec.message_annotations = dict(decode_value(raw).value or {})
        elif code == PROPERTIES:
            sec.properties = list(decode_value(raw).value or [])
            sec.raw_properties = raw
        elif code == APPLICATION_PROPERTIES:
            sec.application_properties = dict(decode_value(raw).value or {})
            sec.raw_application_properties = raw
        else:
            rest.append(raw)
    sec.raw_rest = b"".join(rest)
    return sec
