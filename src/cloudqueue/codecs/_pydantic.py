"""pydantic v2 models: ``model_dump_json`` out, ``model_validate_json`` in (one pass of
pydantic-core's own parser, no ``json.loads`` first). Imported only when a model is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

import pydantic

from ..errors import DecodeError, InvalidArgument
from ..wire import CONTENT_TYPE_ATTRIBUTE
from ._base import JSON_CONTENT_TYPE, Codec, Decoder, decode_prepared, describe, require_json

__all__ = ["PydanticCodec"]

T = TypeVar("T")

_BASE_VALIDATE_JSON = pydantic.BaseModel.model_validate_json.__func__  # type: ignore[attr-defined]
#: The decoder built per model, for :meth:`PydanticCodec.decode` (a program decodes into
#: the few models its code names, so this stays small).
_prepared: dict[type, Decoder[Any]] = {}

#: How many validation errors a DecodeError lists before "and N more".
_SHOWN_ERRORS = 5


def summary(error: pydantic.ValidationError) -> str:
    """``total: Input should be a valid number; id: Field required``: each error's
    location and message, without the input values (a payload may hold personal data)."""
    details = error.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(str(step) for step in detail['loc']) or '$'}: {detail['msg']}"
        for detail in details[:_SHOWN_ERRORS]
    ]
    if len(details) > _SHOWN_ERRORS:
        parts.append(f"and {len(details) - _SHOWN_ERRORS} more")
    return "; ".join(parts)


class PydanticCodec(Codec):
    """pydantic ``BaseModel`` subclasses, as JSON."""

    def handles(self, kind: object) -> bool:
        return isinstance(kind, type) and issubclass(kind, pydantic.BaseModel)

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        if not isinstance(value, pydantic.BaseModel):
            raise InvalidArgument(
                f"the pydantic codec encodes BaseModel instances, not {type(value).__name__}"
            )
        return value.model_dump_json().encode(), {"content-type": JSON_CONTENT_TYPE}

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        # The decoder built per model: issubclass through pydantic's ABC metaclass alone
        # costs more than a tenth of validating a small model, so it is checked once.
        return decode_prepared(self, _prepared, body, attributes, kind)

    def decoder(self, kind: type[T]) -> Decoder[T]:
        if not self.handles(kind):
            raise InvalidArgument(f"the pydantic codec cannot decode into {describe(kind)}")
        model = cast(type[pydantic.BaseModel], kind)
        # A model that overrides model_validate_json keeps its override; any other is
        # validated by the pydantic-core validator model_validate_json calls, without the
        # keyword handling in between. The validator is read from the class at each call,
        # not kept: pydantic replaces it when the model is rebuilt (model_rebuild, a
        # forward reference resolved late).
        direct = getattr(model.model_validate_json, "__func__", None) is _BASE_VALIDATE_JSON
        name = describe(kind)

        def decoder(body: bytes, attributes: Mapping[str, str]) -> T:
            content_type = attributes.get(CONTENT_TYPE_ATTRIBUTE)
            if content_type != JSON_CONTENT_TYPE and content_type is not None:
                require_json(attributes, kind)  # the uncommon content types, checked in full
            try:
                if direct:
                    return cast(T, model.__pydantic_validator__.validate_json(body))
                return cast(T, model.model_validate_json(body))
            except pydantic.ValidationError as error:
                raise DecodeError(f"the body is not a valid {name}: {summary(error)}", kind=kind) from None

        return decoder

    def __repr__(self) -> str:
        return "PydanticCodec()"
