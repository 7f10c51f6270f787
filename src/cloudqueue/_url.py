"""Parsing destination URLs, strictly, and keeping their secrets out of sight."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .errors import InvalidArgument, register_secret

__all__ = ["Url", "parse_url"]

_REDACTED = "***"


@dataclass(frozen=True, slots=True)
class Url:
    """A parsed destination URL: ``scheme://host/path?name=value``.

    Providers interpret ``host`` and ``path`` (a queue name, a project and a
    topic, a file path...). ``str()`` and ``repr()`` hide the password and every
    parameter the provider marks secret.
    """

    scheme: str
    host: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    secret_params: frozenset[str] = frozenset()

    @property
    def subscription(self) -> str | None:
        """The ``subscription`` parameter: set when a consumer reads a topic."""
        return self.params.get("subscription")

    @property
    def segments(self) -> list[str]:
        """The non-empty parts of ``host/path``, e.g. ``["project", "topic"]``."""
        return [part for part in (self.host, *self.path.split("/")) if part]

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def float_param(self, name: str, default: float) -> float:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise InvalidArgument(f"URL parameter {name}={raw!r} is not a number") from None

    def bool_param(self, name: str, default: bool) -> bool:
        raw = self.params.get(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise InvalidArgument(f"URL parameter {name}={raw!r} is not a boolean (true/false)")

    def replace(self, **changes: object) -> Url:
        """A copy with the given fields changed (``params`` replaces all parameters)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_params(self, **params: str | None) -> Url:
        """A copy with parameters set (a value of None removes the parameter)."""
        merged = dict(self.params)
        for name, value in params.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return self.replace(params=merged)

    def unsafe_str(self) -> str:
        """The full URL, secrets included: only for handing to an SDK."""
        return self._format(redact=False)

    def __str__(self) -> str:
        return self._format(redact=True)

    def __repr__(self) -> str:
        return f"Url({self._format(redact=True)!r})"

    def _format(self, *, redact: bool) -> str:
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + (_REDACTED if redact else quote(self.password, safe=""))
            userinfo += "@"
        query = ""
        if self.params:
            shown = {
                name: (_REDACTED if redact and name in self.secret_params else value)
                for name, value in self.params.items()
            }
            query = "?" + urlencode(shown, safe="/:*")
        return f"{self.scheme}://{userinfo}{self.host}{self.path}{query}"


def parse_url(text: str, *, secret_params: Iterable[str] = ()) -> Url:
    """Parse ``text`` strictly: a scheme, no fragment, no repeated parameter."""
    if not isinstance(text, str) or not text:
        raise InvalidArgument(f"a destination URL must be a non-empty string, not {text!r}")
    if "://" not in text:
        raise InvalidArgument(
            f"malformed destination URL {_shorten(text)!r}: expected scheme://destination, "
            "for example memory://orders"
        )
    parts = urlsplit(text)
    if not parts.scheme:
        raise InvalidArgument(f"malformed destination URL {_shorten(text)!r}: no scheme")
    if parts.fragment:
        raise InvalidArgument("destination URLs take no #fragment")
    params: dict[str, str] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidArgument("malformed query string in destination URL") from None
    for name, value in pairs:
        if name in params:
            raise InvalidArgument(f"URL parameter {name!r} is given twice")
        params[name] = value
    secrets = frozenset(secret_params)
    for name in secrets & params.keys():
        register_secret(params[name])
    if parts.password:
        register_secret(parts.password)
    try:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        raise InvalidArgument("malformed host or port in destination URL") from None
    # urlsplit lowercases hostname; destination names are case-sensitive, so keep
    # the original spelling from netloc.
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.lower() == host.lower():
        host = netloc
    return Url(
        scheme=parts.scheme.lower(),
        host=host,
        path=parts.path,
        params=params,
        username=parts.username,
        password=parts.password,
        secret_params=secrets,
    )


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
