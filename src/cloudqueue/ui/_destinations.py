"""The destinations a console shows: parsed once, addressed by index, shown redacted.

The URL a user gave may hold secrets (a connection string, a password), so a page, a
path or a log line only ever gets :attr:`Destination.label` (the URL as ``str(Url)``
prints it, secrets as ``***``) and the index; the full URL stays in :attr:`url`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._registry import resolve
from .._url import Url
from ..errors import InvalidArgument

__all__ = ["Destination", "destinations", "read_config"]


@dataclass(frozen=True, slots=True)
class Destination:
    index: int
    #: The URL as given, secrets included: for calls into cloudqueue only.
    url: str = field(repr=False)
    #: The URL with every secret masked: what pages show.
    label: str
    #: The URL scheme: ``memory``, ``sqlite``, ``sqs``...
    provider: str
    #: The queue or subscription name, which a purge asks the user to type.
    name: str


def destinations(urls: Sequence[str]) -> list[Destination]:
    """Each URL parsed (an unknown scheme or parameter is refused here, before serving)."""
    if isinstance(urls, str):
        raise InvalidArgument("urls must be a list of destination URLs, not one string")
    if not urls:
        raise InvalidArgument("the console needs at least one destination URL")
    found = []
    for index, text in enumerate(urls):
        if not isinstance(text, str):
            raise InvalidArgument(f"urls[{index}] must be a URL (str), not {type(text).__name__}")
        _, parsed = resolve(text)
        found.append(Destination(index, text, str(parsed), parsed.scheme, _name(parsed)))
    return found


def _name(url: Url) -> str:
    for candidate in (url.subscription, url.param("queue"), *reversed(url.segments)):
        if candidate:
            return candidate
    return url.host or str(url)


def read_config(path: str | Path) -> list[str]:
    """The URLs of a console config file: one per line; blank lines and ``#`` comments skipped.

    A plain list rather than TOML: the file is a list of URLs and nothing else, and a
    line can be pasted from (or into) a shell command unchanged.
    """
    text = Path(path).read_text(encoding="utf-8")
    return list(_urls(text.splitlines()))


def _urls(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield stripped
