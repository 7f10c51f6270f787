"""The outgoing message type, shared by the public API and the drivers."""

from __future__ import annotations

from collections.abc import Mapping

from .errors import InvalidArgument

__all__ = ["Message"]


class Message:
    """A message to send.

    ``body`` is bytes or str (str is encoded as UTF-8); it is received as the
    same bytes on every provider. ``attributes`` maps str to str. ``ordering_key``
    keeps messages of one key in order on destinations declared ``ordered``;
    ``deduplication_id`` drops repeats within the window on destinations declared
    ``deduplicated``; ``delay`` (seconds) holds the message back before delivery.
    """

    __slots__ = ("attributes", "body", "deduplication_id", "delay", "ordering_key")

    def __init__(
        self,
        body: bytes | str,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
    ) -> None:
        if type(body) is not bytes:
            body = _as_bytes(body)
        self.body: bytes = body
        self.attributes: dict[str, str] = {} if attributes is None else _checked(attributes)
        if ordering_key is not None:
            _check_key("ordering_key", ordering_key)
        if deduplication_id is not None:
            _check_key("deduplication_id", deduplication_id)
        self.ordering_key = ordering_key
        self.deduplication_id = deduplication_id
        self.delay = delay

    def __repr__(self) -> str:
        # Never raises, whatever was assigned to the fields since: it ends up in logs.
        try:
            return self._describe()
        except Exception:
            return f"<Message at {id(self):#x}>"

    def _describe(self) -> str:
        extras = "".join(
            f", {name}={value!r}"
            for name in ("ordering_key", "deduplication_id", "delay")
            if (value := getattr(self, name, None)) is not None
        )
        body = getattr(self, "body", None)
        size = f"{len(body)} bytes" if isinstance(body, bytes) else type(body).__name__
        attributes = getattr(self, "attributes", None)
        names = sorted(map(repr, attributes)) if isinstance(attributes, dict) else []
        return f"Message(<{size}>, attributes=[{', '.join(names)}]{extras})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in Message.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable


def _as_bytes(body: object) -> bytes:
    if isinstance(body, str):
        return encoded(body, "message body")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise InvalidArgument(f"message body must be bytes or str, not {type(body).__name__}")


def encoded(text: str, what: str) -> bytes:
    """``text`` as UTF-8, or an :class:`InvalidArgument` naming ``what`` and the
    position of the character that has no UTF-8 form (a lone surrogate)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidArgument(
            f"{what} is not valid text: character {error.start} is a lone surrogate "
            f"({text[error.start]!r}), which UTF-8 cannot encode"
        ) from None


def _checked(attributes: object) -> dict[str, str]:
    """A copy of ``attributes``, refused unless it maps str names to str values."""
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        raise InvalidArgument(
            f"attributes must be a mapping of str to str, not {type(attributes).__name__}"
        )
    copy = dict(attributes)
    for name, value in copy.items():
        if type(name) is not str:
            raise InvalidArgument(
                f"attributes: attribute names must be str, not {type(name).__name__}"
            )
        if type(value) is not str:
            raise InvalidArgument(
                f"attributes: attribute {name[:40]!r} must have a str value, "
                f"not {type(value).__name__}"
            )
    return copy


def _check_key(label: str, value: object) -> None:
    if type(value) is not str or not value:
        given = "''" if value == "" else type(value).__name__
        raise InvalidArgument(f"{label} must be a non-empty str or None, not {given}")
    encoded(value, label)
