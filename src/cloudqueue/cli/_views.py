"""Plain-text views the operations commands share: counts, ages, body previews, tables.

Pure functions of their arguments (no I/O, no clock), so tests can pin them down.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

__all__ = [
    "UNKNOWN",
    "age_since",
    "body_json",
    "count",
    "format_age",
    "preview",
    "table",
]

#: What a cell shows when the provider cannot know the value.
UNKNOWN = "-"

#: Longest body preview, in characters, before it is cut with an ellipsis.
PREVIEW_CHARS = 60


def count(value: int | None) -> str:
    return UNKNOWN if value is None else str(value)


def format_age(seconds: float | None) -> str:
    """``4.2s``, ``3m07s``, ``2h05m``, ``3d04h``: two units at most, so columns stay narrow."""
    if seconds is None:
        return UNKNOWN
    seconds = max(0.0, seconds)  # clocks of two machines may disagree by a little
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def age_since(enqueued_at: datetime | None, now: datetime) -> float | None:
    return None if enqueued_at is None else (now - enqueued_at).total_seconds()


def preview(body: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The body as one printable line: UTF-8 text with control characters and
    undecodable bytes escaped, cut at ``limit`` characters with its full size noted."""
    text = body.decode("utf-8", errors="backslashreplace")
    shown = "".join(char if char.isprintable() else _escape(char) for char in text)
    if len(shown) <= limit:
        return shown
    return f"{shown[: limit - 1]}… ({len(body)} bytes)"


def _escape(char: str) -> str:
    # repr() spells \n, \t and \x07 the way a Python user reads them; strip its quotes.
    return repr(char)[1:-1]


def body_json(body: bytes) -> dict[str, object]:
    """The body as text when it is UTF-8, else as base64 with a flag saying so
    (the same fields ``cloudqueue receive --json`` prints)."""
    try:
        return {"body": body.decode("utf-8"), "base64": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "base64": True}


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()
) -> str:
    """Columns padded to their widest cell, two spaces apart; ``right`` holds the indexes
    of right-aligned (numeric) columns. The last column is never padded."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    lines = []
    for cells in (headers, *rows):
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        padded[-1] = cells[-1].rjust(widths[-1]) if len(cells) - 1 in right else cells[-1]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
