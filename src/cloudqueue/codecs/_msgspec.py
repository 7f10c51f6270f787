"""msgspec Structs: ``msgspec.json`` both ways, with one cached decoder per type (building
a decoder costs more than decoding a small message). Imported only when a Struct is used."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import msgspec

from ..errors import DecodeError, InvalidArgument
from ._base import JSON_CONTENT_TYPE, Codec, describe, require_json

__all__ = ["MsgspecCodec"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


@functools.lru_cache(maxsize=256)
def _decoder(kind: type) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


class MsgspecCodec(Codec):
    """``msgspec.Struct`` subclasses, as JSON."""

    def handles(self, kind: object) -> bool:
        return isinstance(kind, type) and issubclass(kind, msgspec.Struct)

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        if not isinstance(value, msgspec.Struct):
            raise InvalidArgument(f"the msgspec codec encodes Struct instances, not {type(value).__name__}")
        return _encoder.encode(value), {"content-type": JSON_CONTENT_TYPE}

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        if not self.handles(kind):
            raise InvalidArgument(f"the msgspec codec cannot decode into {describe(kind)}")
        require_json(attributes, kind)
        try:
            return cast(T, _decoder(cast(type, kind)).decode(body))
        except msgspec.DecodeError as error:  # ValidationError is a DecodeError
            # msgspec's messages name the path and the expected type, not the input.
            raise DecodeError(f"the body is not a valid {describe(kind)}: {error}", kind=kind) from None

    def __repr__(self) -> str:
        return "MsgspecCodec()"
