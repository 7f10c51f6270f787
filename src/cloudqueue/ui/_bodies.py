"""How a message body is shown: pretty JSON, else text, else a hex dump (pure).

Whatever comes out is plain text; the templates escape it (a body holding ``<script>``
is shown as those characters, never run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["PREVIEW_BYTES", "PREVIEW_CHARS", "Shown", "full", "preview"]

#: Characters of a text or JSON body shown in a table row.
PREVIEW_CHARS = 200
#: Bytes of a binary body shown (as hex) in a table row.
PREVIEW_BYTES = 64
#: Bytes of a binary body a full view dumps; past it, the dump says how many remain.
_FULL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Shown:
    #: ``json``, ``text`` or ``hex``.
    format: str
    text: str


def full(body: bytes) -> Shown:
    text = _decoded(body)
    if text is None:
        return Shown("hex", _hex_dump(body[:_FULL_BYTES]) + _rest(body, _FULL_BYTES))
    pretty = _pretty_json(text)
    return Shown("json", pretty) if pretty is not None else Shown("text", text)


def preview(body: bytes) -> Shown:
    text = _decoded(body)
    if text is None:
        return Shown("hex", body[:PREVIEW_BYTES].hex(" ") + _rest(body, PREVIEW_BYTES))
    pretty = _pretty_json(text)
    shown = Shown("json", pretty) if pretty is not None else Shown("text", text)
    if len(shown.text) > PREVIEW_CHARS:
        return Shown(shown.format, f"{shown.text[:PREVIEW_CHARS]}… ({len(body)} bytes)")
    return shown


def _decoded(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _pretty_json(text: str) -> str | None:
    # Only objects and arrays: "42" or "true" read better as the text they are.
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def _hex_dump(data: bytes) -> str:
    rows = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{offset:08x}  {chunk.hex(' '):<47}  {printable}")
    return "\n".join(rows)


def _rest(body: bytes, shown: int) -> str:
    return f"\n… ({len(body) - shown} more bytes)" if len(body) > shown else ""
