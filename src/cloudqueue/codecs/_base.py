"""The codec interface, and the JSON content-type rule the built-in codecs share."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar, cast

from ..errors import DecodeError
from ..wire import CONTENT_TYPE_ATTRIBUTE

__all__ = ["JSON_CONTENT_TYPE", "Codec", "Decoder", "decode_prepared", "describe", "require_json"]

T = TypeVar("T")

#: ``decoder(body, attributes)``: one type's payloads decoded, prepared once per type.
Decoder: TypeAlias = Callable[[bytes, Mapping[str, str]], T]

#: What the built-in codecs write in the ``content-type`` attribute.
JSON_CONTENT_TYPE = "application/json"


class Codec(abc.ABC):
    """Turns values into message bodies and back.

    A codec is stateless from the caller's point of view and safe to share between
    threads. Implement the three abstract methods to plug in a format of your own (and
    :meth:`decoder` to do per-type work once), and pass the codec as ``codec=`` to
    :func:`cloudqueue.open_producer` / :func:`cloudqueue.open_consumer`.
    """

    @abc.abstractmethod
    def handles(self, kind: object) -> bool:
        """Whether this codec can decode a payload into the annotation ``kind``."""

    @abc.abstractmethod
    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        """The body for ``value`` and the attributes to send with it, always including
        ``content-type``. ``scheme`` is the provider's URL scheme (``"sqs"``, ``"pubsub"``,
        ``"azuresb"``...), for formats whose binding differs per transport. Raises
        :class:`~cloudqueue.InvalidArgument` for a value it cannot encode."""

    @abc.abstractmethod
    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        """The value of type ``kind`` in ``body``. Raises
        :class:`~cloudqueue.errors.DecodeError` naming what failed."""

    def decoder(self, kind: type[T]) -> Decoder[T]:
        """A function ``decoder(body, attributes)`` that does what
        ``decode(body, attributes, kind)`` does, built once per type and kept (see
        ``message.decode(Type)``). Override it to do the per-type work (checking the type,
        compiling a validator) once instead of per message; raise
        :class:`~cloudqueue.InvalidArgument` here for a type the codec cannot decode into.
        The default calls :meth:`decode`."""
        decode = self.decode

        def decoder(body: bytes, attributes: Mapping[str, str]) -> T:
            return decode(body, attributes, kind)

        return decoder


def decode_prepared(
    codec: Codec, prepared: dict[type, Decoder[Any]], body: bytes,
    attributes: Mapping[str, str], kind: type[T],
) -> T:
    """``codec.decode`` through the decoder ``codec.decoder(kind)`` prepared once per
    type and kept in ``prepared``, for codecs whose per-type work is worth keeping."""
    decoder = prepared.get(kind) if isinstance(kind, type) else None
    if decoder is None:
        decoder = prepared[kind] = codec.decoder(kind)
    return cast(T, decoder(body, attributes))


def describe(kind: object) -> str:
    """A type's name for messages: ``Order``, ``list[int]``."""
    return kind.__qualname__ if isinstance(kind, type) else repr(kind).replace("typing.", "")


def require_json(attributes: Mapping[str, str], kind: object) -> None:
    """Refuse a payload whose ``content-type`` says it is not JSON.

    No content type (a message from a sender outside the library), ``application/json``
    and any ``+json`` type (``application/cloudevents+json``) pass: the body is parsed
    and validated. Anything else (``application/octet-stream``, ``text/plain``) cannot
    be what the JSON codecs made, so it fails without being parsed.
    """
    content_type = attributes.get(CONTENT_TYPE_ATTRIBUTE)
    if content_type is None or content_type == JSON_CONTENT_TYPE:  # the common cases, first
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_CONTENT_TYPE or media.endswith("+json"):
        return
    raise DecodeError(
        f"cannot decode a {content_type[:100]!r} payload as {describe(kind)}: "
        f"the JSON codecs read {JSON_CONTENT_TYPE} (or a +json type)",
        kind=kind,
    )
