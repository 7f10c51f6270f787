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
        self.attributes: dict[str, str] = dict(attributes) if attributes else {}
        self.ordering_key = ordering_key
        self.deduplication_id = deduplication_id
        self.delay = delay

    def __repr__(self) -> str:
        extras = "".join(
            f", {name}={value!r}"
            for name in ("ordering_key", "deduplication_id", "delay")
            if (value := getattr(self, name)) is not None
        )
        return (
            f"Message(<{len(self.body)} bytes>, attributes={sorted(self.attributes)}{extras})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in Message.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable


def _as_bytes(body: object) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise InvalidArgument(f"message body must be bytes or str, not {type(body).__name__}")
