"""Dataclasses as JSON objects: ``dataclasses.asdict`` out, field-by-field construction
in, with nested dataclasses, lists and dicts of them, and optional fields."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from ..errors import DecodeError, InvalidArgument
from ._base import JSON_CONTENT_TYPE, Codec, Decoder, describe
from ._json import check_value, is_json_type, json_body, parse_json

__all__ = ["DataclassCodec"]

T = TypeVar("T")


class _Invalid(Exception):
    """One problem found while building a dataclass, with where it was."""


def is_dataclass_type(kind: object) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


@functools.lru_cache(maxsize=256)
def _fields(kind: type) -> tuple[tuple[str, object, bool], ...]:
    """(name, annotation, required) per init field; InvalidArgument for a field type
    JSON cannot carry (a ``datetime``: use pydantic or msgspec for those)."""
    try:
        hints = typing.get_type_hints(kind)
    except NameError as error:
        raise InvalidArgument(
            f"cannot resolve the field annotations of {describe(kind)} ({error}): define the "
            "types it names at module level"
        ) from None
    result = []
    for field in dataclasses.fields(kind):
        if not field.init:
            continue
        annotation = hints.get(field.name, Any)
        if not _supported(annotation):
            raise InvalidArgument(
                f"the dataclass codec cannot carry field {describe(kind)}.{field.name} of type "
                f"{describe(annotation)} in JSON: use JSON types and dataclasses, or a pydantic "
                "model or msgspec Struct"
            )
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        result.append((field.name, annotation, required))
    return tuple(result)


def _supported(annotation: object) -> bool:
    if is_dataclass_type(annotation) or is_json_type(annotation):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, typing.Union, types.UnionType):
        return all(_supported(arg) for arg in args)
    if origin is dict:
        return args[0] is str and _supported(args[1])
    return False


def _build(value: object, annotation: object, path: str) -> object:
    if is_dataclass_type(annotation):
        kind = cast(type, annotation)
        if not isinstance(value, dict):
            raise _Invalid(f"{path}: expected an object for {describe(kind)}")
        fields = _fields(kind)
        unknown = set(value) - {name for name, _, _ in fields}
        if unknown:
            raise _Invalid(f"{path}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        arguments = {}
        for name, field_type, required in fields:
            if name in value:
                arguments[name] = _build(value[name], field_type, f"{path}.{name}")
            elif required:
                raise _Invalid(f"{path}: missing field {name!r}")
        return kind(**arguments)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        problems = []
        for arg in args:
            try:
                return _build(value, arg, path)
            except _Invalid as problem:
                problems.append(str(problem))
        raise _Invalid(problems[0] if len(problems) == 1 else f"{path}: expected {describe(annotation)}")
    if origin is list and args and not is_json_type(annotation):
        if not isinstance(value, list):
            raise _Invalid(f"{path}: expected an array")
        return [_build(item, args[0], f"{path}[{index}]") for index, item in enumerate(value)]
    if origin is dict and not is_json_type(annotation):
        if not isinstance(value, dict):
            raise _Invalid(f"{path}: expected an object")
        return {key: _build(item, args[1], f"{path}.{key}") for key, item in value.items()}
    found = check_value(value, annotation, path)
    if found:
        raise _Invalid(found)
    return value


class DataclassCodec(Codec):
    """Dataclass instances as JSON objects (standard library only)."""

    def handles(self, kind: object) -> bool:
        return is_dataclass_type(kind)

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            raise InvalidArgument(
                f"the dataclass codec encodes dataclass instances, not {type(value).__name__}"
            )
        return json_body(dataclasses.asdict(value)), {"content-type": JSON_CONTENT_TYPE}

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        return self.decoder(kind)(body, attributes)

    def decoder(self, kind: type[T]) -> Decoder[T]:
        if not is_dataclass_type(kind):
            raise InvalidArgument(f"the dataclass codec cannot decode into {describe(kind)}")
        _fields(cast(type, kind))  # a field type JSON cannot carry is the caller's mistake, not the payload's

        def decoder(body: bytes, attributes: Mapping[str, str]) -> T:
            data = parse_json(body, attributes, kind)
            try:
                return cast(T, _build(data, kind, "$"))
            except _Invalid as problem:
                raise DecodeError(f"the body is not a valid {describe(kind)}: {problem}", kind=kind) from None
            except (TypeError, ValueError) as error:  # raised by the dataclass's own __post_init__
                raise DecodeError(
                    f"the body is not a valid {describe(kind)}: {type(error).__name__}: {error}", kind=kind
                ) from None

        return decoder

    def __repr__(self) -> str:
        return "DataclassCodec()"
