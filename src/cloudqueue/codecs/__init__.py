"""Typed payloads: codecs that turn values into message bodies and back.

::

    producer.send(Order(id=7, total=9.5))        # codec chosen by the value's type
    order = message.decode(Order)                # codec chosen by the type asked for

Built in: JSON (standard library types), dataclasses, pydantic v2 models and msgspec
Structs (those two only when installed: ``cloudqueue[pydantic]``, ``cloudqueue[msgspec]``),
and CloudEvents through :mod:`cloudqueue.cloudevents`. Every built-in codec sends the
``content-type`` attribute (:data:`cloudqueue.wire.CONTENT_TYPE_ATTRIBUTE`), and refuses
to decode a payload whose content type says it is something else. A payload that does
not decode raises :class:`cloudqueue.errors.DecodeError`, never retryable. See
docs/typed-messages.md.
"""

from __future__ import annotations

from ._base import JSON_CONTENT_TYPE, Codec
from ._choose import codec_for_type, codec_for_value
from ._dataclass import DataclassCodec
from ._json import JsonCodec

__all__ = [
    "JSON_CONTENT_TYPE",
    "Codec",
    "DataclassCodec",
    "JsonCodec",
    "MsgspecCodec",
    "PydanticCodec",
    "codec_for_type",
    "codec_for_value",
]


def __getattr__(name: str) -> type[Codec]:
    # The optional libraries' codecs import them: only when asked for by name.
    if name == "PydanticCodec":
        from ._pydantic import PydanticCodec

        return PydanticCodec
    if name == "MsgspecCodec":
        from ._msgspec import MsgspecCodec

        return MsgspecCodec
    raise AttributeError(f"module 'cloudqueue.codecs' has no attribute {name!r}")
