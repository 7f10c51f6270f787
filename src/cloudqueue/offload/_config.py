"""What a producer or consumer is told about offloading: the ``Offload`` setting,
from a keyword argument or from the ``offload*`` URL parameters."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from ..errors import InvalidArgument

__all__ = ["URL_PARAMETERS", "Offload", "choose_offload", "split_offload"]

#: The URL parameters the core reads (and removes) before the provider sees the URL.
URL_PARAMETERS = frozenset({"offload", "offload_threshold", "offload_delete"})

#: Schemes of the built-in stores: an ``Offload`` naming one can be built before its
#: SDK is installed (opening the store then says which extra to install).
_BUILTIN_SCHEMES = frozenset({"file", "s3", "gs", "az"})


@dataclass(frozen=True, slots=True)
class Offload:
    """Send bodies above ``threshold`` bytes through a payload store (claim check).

    ``location``: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
    ``az://container/prefix`` or ``file:///absolute/dir`` (or a scheme a plugin
    adds). ``threshold``: offload messages whose size, measured as the destination
    measures it (body and attributes), is above this many bytes; None (default)
    means the destination's ``max_message_bytes``; 0 offloads every message.
    ``delete_after_ack``: a consumer deletes the stored payload once the message's
    ack succeeded (default False: keep it, and let a lifecycle rule expire it).
    Consumers fetch payloads only from inside their own ``location``.
    """

    location: str
    threshold: int | None = None
    delete_after_ack: bool = False

    def __post_init__(self) -> None:
        _check_location(self.location)
        threshold = self.threshold
        if threshold is not None and (type(threshold) is not int or threshold < 0):
            raise InvalidArgument(
                f"offload threshold must be None or an int of bytes >= 0, not {threshold!r:.40}"
            )
        if type(self.delete_after_ack) is not bool:
            raise InvalidArgument(
                f"offload delete_after_ack must be True or False, not {self.delete_after_ack!r:.40}"
            )

    @property
    def scheme(self) -> str:
        return self.location.split("://", 1)[0].lower()


def _check_location(location: object) -> None:
    if not isinstance(location, str) or "://" not in location:
        raise InvalidArgument(
            f"offload location {location!r:.80} has no scheme: expected s3://bucket/prefix, "
            "gs://bucket/prefix, az://container/prefix or file:///absolute/dir"
        )
    scheme, rest = location.split("://", 1)
    scheme = scheme.lower()
    if scheme not in _BUILTIN_SCHEMES:
        from ._store import store_classes  # loads plugins: only for a scheme we do not know

        if scheme not in store_classes():
            known = ", ".join(f"{name}://" for name in sorted(_BUILTIN_SCHEMES | store_classes().keys()))
            raise InvalidArgument(
                f"offload location scheme {scheme}:// is not a payload store (known: {known})"
            )
    if scheme == "file":
        from ._file import directory_of

        directory_of(location)  # raises for a relative path
    elif not rest.strip("/"):
        raise InvalidArgument(f"offload location {location!r:.80} names no bucket or container")


def split_offload(url: str) -> tuple[str, Offload | None]:
    """``url`` without its ``offload*`` parameters, and the ``Offload`` they describe.

    The other parameters are kept exactly as written (secrets included): only
    whole ``name=value`` pieces are removed.
    """
    if not isinstance(url, str) or "?" not in url:
        return url, None
    base, _, query = url.partition("?")
    query, hash_, fragment = query.partition("#")
    kept: list[str] = []
    found: dict[str, str] = {}
    for piece in query.split("&"):
        name, _, value = piece.partition("=")
        name = unquote_plus(name)
        if name not in URL_PARAMETERS:
            kept.append(piece)
            continue
        if name in found:
            raise InvalidArgument(f"URL parameter {name!r} is given twice")
        found[name] = unquote_plus(value)
    if not found:
        return url, None
    if "offload" not in found:
        raise InvalidArgument(
            f"URL parameter {sorted(found)[0]!r} needs offload=<location> beside it"
        )
    stripped = base + ("?" + "&".join(kept) if kept else "") + hash_ + fragment
    return stripped, Offload(
        found["offload"],
        threshold=_threshold(found.get("offload_threshold")),
        delete_after_ack=_flag(found.get("offload_delete")),
    )


def choose_offload(from_url: Offload | None, argument: Offload | None) -> Offload | None:
    """The one ``Offload`` in force: from the URL or the argument, never both."""
    if argument is not None and not isinstance(argument, Offload):
        raise InvalidArgument(
            f"offload= must be a cloudqueue.Offload (or None), not {type(argument).__name__}"
        )
    if from_url is not None and argument is not None:
        raise InvalidArgument(
            "offloading is configured twice: by offload= URL parameters and by the offload= "
            "argument; keep one"
        )
    return argument if argument is not None else from_url


def _threshold(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise InvalidArgument(
            f"URL parameter offload_threshold={raw!r:.40} is not a whole number of bytes >= 0"
        )
    return int(raw)


def _flag(raw: str | None) -> bool:
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"URL parameter offload_delete={raw!r:.40} is not a boolean (true/false)")
