"""pydantic v2 models: ``model_dump_json`` out, ``model_validate_json`` in (one pass of
pydantic-core's own parser, no ``json.loads`` first). Imported only when a model is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar, cast

import pydantic

from ..errors import DecodeError, InvalidArgument
from ._base import JSON_CONTENT_TYPE, Codec, describe, require_json

__all__ = ["PydanticCodec"]

T = TypeVar("T")

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
        # Not self.handles(): issubclass through pydantic's ABC metaclass costs more than a
        # tenth of validating a small model; a type without the method is not a model.
        validate = getattr(kind, "model_validate_json", None)
        if validate is None:
            raise InvalidArgument(f"the pydantic codec cannot decode into {describe(kind)}")
        require_json(attributes, kind)
        try:
            return cast(T, validate(body))
        except pydantic.ValidationError as error:
            raise DecodeError(
                f"the body is not a valid {describe(kind)}: {summary(error)}", kind=kind
            ) from None

    def __repr__(self) -> str:
        return "PydanticCodec()"
