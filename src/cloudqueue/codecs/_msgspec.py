"""msgspec Structs: ``msgspec.json`` both ways, with one decoder built per type (building a
decoder costs more than decoding a small message). Imported only when a Struct is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from ..errors import DecodeError, InvalidArgument
from ..wire import CONTENT_TYPE_ATTRIBUTE
from ._base import JSON_CONTENT_TYPE, Codec, Decoder, decode_prepared, describe, require_json

__all__ = ["MsgspecCodec"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
#: The decoder built per Struct type, for :meth:`MsgspecCodec.decode` (a program
#: decodes into the few types its code names, so this stays small).
_prepared: dict[type, Decoder[Any]] = {}


class MsgspecCodec(Codec):
    """``msgspec.Struct`` subclasses, as JSON."""

    def handles(self, kind: object) -> bool:
        return isinstance(kind, type) and issubclass(kind, msgspec.Struct)

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        if not isinstance(value, msgspec.Struct):
            raise InvalidArgument(f"the msgspec codec encodes Struct instances, not {type(value).__name__}")
        return _encoder.encode(value), {"content-type": JSON_CONTENT_TYPE}

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        return decode_prepared(self, _prepared, body, attributes, kind)

    def decoder(self, kind: type[T]) -> Decoder[T]:
        if not self.handles(kind):
            raise InvalidArgument(f"the msgspec codec cannot decode into {describe(kind)}")
        # msgspec's own Decoder, built once: cheaper per call than msgspec.json.decode(type=).
        decode = msgspec.json.Decoder(kind).decode
        name = describe(kind)

        def decoder(body: bytes, attributes: Mapping[str, str]) -> T:
            content_type = attributes.get(CONTENT_TYPE_ATTRIBUTE)
            if content_type != JSON_CONTENT_TYPE and content_type is not None:
                require_json(attributes, kind)  # the uncommon content types, checked in full
            try:
                return decode(body)
            except msgspec.DecodeError as error:  # ValidationError is a DecodeError
                # msgspec's messages name the path and the expected type, not the input.
                raise DecodeError(f"the body is not a valid {name}: {error}", kind=kind) from None

        return decoder

    def __repr__(self) -> str:
        return "MsgspecCodec()"
