"""Parsing destination URLs, strictly, and keeping their secrets out of sight."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ._secrets import REDACTED, hide_url_passwords, register_secret, register_url_secrets, scrub
from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._sdk import SdkObjects

__all__ = ["Url", "parse_url"]


@dataclass(frozen=True, slots=True)
class Url:
    """A parsed destination URL: ``scheme://host/path?name=value``.

    Providers interpret ``host`` and ``path`` (a queue name, a project and a
    topic, a file path...). ``username`` and ``password`` are URL-decoded.

    Every secret is registered (see :func:`cloudqueue.errors.register_secret`) as soon
    as a ``Url`` is made: the password, the values of the provider's secret parameters
    and the password of every ``scheme://user:password@host`` inside another
    parameter's value. ``str()`` and ``repr()`` show each of them as ``***`` by
    position (and then scrub what is left of every registered secret); so does the
    ``repr()`` of ``params``. Only :meth:`unsafe_str` gives them back.
    """

    scheme: str
    host: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    secret_params: frozenset[str] = frozenset()
    #: The user's own SDK objects given as ``sdk=`` next to the URL (checked against
    #: ``Provider.sdk_type``); not part of the URL's text or equality.
    sdk: SdkObjects | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.password:
            register_secret(self.password)
        for name, value in self.params.items():
            if name in self.secret_params:
                register_secret(value)
            else:
                register_url_secrets(value)
        if not isinstance(self.params, _Params) or self.params.secret != self.secret_params:
            object.__setattr__(self, "params", _Params(self.params, self.secret_params))

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
            raise InvalidArgument(
                f"URL parameter {name}={self._shown(name, raw)!r} is not a number"
            ) from None

    def bool_param(self, name: str, default: bool) -> bool:
        raw = self.params.get(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise InvalidArgument(
            f"URL parameter {name}={self._shown(name, raw)!r} is not a boolean (true/false)"
        )

    def _shown(self, name: str, value: str) -> str:
        return REDACTED if name in self.secret_params else hide_url_passwords(value)

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
        return scrub(self._format(redact=True))

    def __repr__(self) -> str:
        return f"Url({str(self)!r})"

    def _format(self, *, redact: bool) -> str:
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + (REDACTED if redact else quote(self.password, safe=""))
            userinfo += "@"
        query = ""
        if self.params:
            shown = {
                name: (self._shown(name, value) if redact else value)
                for name, value in self.params.items()
            }
            query = "?" + urlencode(shown, safe="/:*@")
        return f"{self.scheme}://{userinfo}{self.host}{self.path}{query}"


def parse_url(text: str, *, secret_params: Iterable[str] = ()) -> Url:
    """Parse ``text`` strictly: a scheme, no fragment, no repeated parameter."""
    if not isinstance(text, str):
        raise InvalidArgument(f"a destination URL must be a string, not {type(text).__name__}")
    if not text:
        raise InvalidArgument("a destination URL must be a non-empty string")
    if "://" not in text:
        raise InvalidArgument(
            f"malformed destination URL {_echo(text)!r}: expected scheme://destination, "
            "for example memory://orders"
        )
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise InvalidArgument("malformed host or port in destination URL") from None
    if not parts.scheme:
        raise InvalidArgument(f"malformed destination URL {_echo(text)!r}: no scheme")
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
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    # Register secrets before anything else can fail and echo them; Url does it again.
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
        username=username,
        password=password,
        secret_params=secrets,
    )


class _Params(dict[str, str]):
    """A URL's parameters; ``repr()`` hides secret ones and URL passwords in the others."""

    __slots__ = ("secret",)

    def __init__(self, params: Mapping[str, str], secret: frozenset[str]) -> None:
        super().__init__(params)
        self.secret = secret

    def __repr__(self) -> str:
        return scrub(repr({
            name: REDACTED if name in self.secret else hide_url_passwords(value)
            for name, value in self.items()
        }))

    def __reduce__(self) -> tuple[object, ...]:
        return (_Params, (dict(self), self.secret))


def _echo(text: str, limit: int = 60) -> str:
    """Unparsable ``text`` as an error may quote it: no query, no user-info."""
    head, query, _ = text.partition("?")
    scheme, sep, rest = head.rpartition("://")
    if "@" in rest:
        rest = REDACTED + "@" + rest.rpartition("@")[2]
    shown = scheme + sep + rest + ("?..." if query else "")
    return shown if len(shown) <= limit else shown[:limit] + "..."
