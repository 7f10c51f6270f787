"""The standard-library JSON codec: dicts, lists, strings, numbers, booleans and None,
checked against the annotation asked for (``dict[str, int]``, ``list[str] | None``)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from ..errors import DecodeError, InvalidArgument
from ._base import JSON_CONTENT_TYPE, Codec, Decoder, describe, require_json

__all__ = ["JsonCodec", "check_value", "is_json_type", "json_body", "parse_json"]

T = TypeVar("T")

_SCALARS: tuple[type, ...] = (bool, int, float, str, type(None))
_ATTRIBUTES = {"content-type": JSON_CONTENT_TYPE}


def is_json_type(kind: object) -> bool:
    """Whether ``kind`` is built only of JSON's own types (and ``Any``)."""
    if kind is Any or kind is object or kind is None or kind in _SCALARS or kind in (list, dict):
        return True
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return all(is_json_type(arg) for arg in args)
    if origin is dict:
        return (not args or args[0] is str) and all(is_json_type(arg) for arg in args[1:])
    if origin in (typing.Union, types.UnionType):
        return all(is_json_type(arg) for arg in args)
    return False


def check_value(value: object, kind: object, path: str = "$") -> str | None:
    """What is wrong with the parsed ``value`` as a ``kind`` (None: nothing). Only
    the types :func:`is_json_type` accepts."""
    if kind is Any or kind is object:
        return None
    if kind is None or kind is type(None):
        return None if value is None else f"{path}: expected null, got {_json_name(value)}"
    if kind is float:  # JSON does not tell 1 from 1.0
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"{path}: expected a number, got {_json_name(value)}"
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{path}: expected an integer, got {_json_name(value)}"
    if kind in (bool, str, list, dict):
        ok = isinstance(value, cast(type, kind))
        return None if ok else f"{path}: expected {_KIND_NAMES[kind]}, got {_json_name(value)}"
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        problems = [check_value(value, arg, path) for arg in args]
        if all(problems):
            return f"{path}: expected {describe(kind)}, got {_json_name(value)}"
        return None
    if origin is list:
        if not isinstance(value, list):
            return f"{path}: expected an array, got {_json_name(value)}"
        for index, item in enumerate(value):
            problem = check_value(item, args[0], f"{path}[{index}]") if args else None
            if problem:
                return problem
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"{path}: expected an object, got {_json_name(value)}"
        for key, item in value.items():
            problem = check_value(item, args[1], f"{path}.{key}") if len(args) == 2 else None
            if problem:
                return problem
        return None
    raise InvalidArgument(f"{describe(kind)} is not a JSON type")  # is_json_type was skipped


_KIND_NAMES: dict[object, str] = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}


def _json_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def parse_json(body: bytes, attributes: Mapping[str, str], kind: object) -> Any:
    """``body`` parsed, or DecodeError naming the kind and where the JSON broke."""
    require_json(attributes, kind)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        # ValueError's text names a position, never the document itself.
        raise DecodeError(
            f"cannot decode the body as {describe(kind)}: not JSON ({error})", kind=kind
        ) from None


def json_body(value: object) -> bytes:
    """Compact UTF-8 JSON for ``value``; InvalidArgument for what JSON cannot hold."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"cannot encode {type(value).__name__} as JSON: {error}") from None


class JsonCodec(Codec):
    """Values of JSON's own types, with the standard library's :mod:`json`."""

    def handles(self, kind: object) -> bool:
        return is_json_type(kind)

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        return json_body(value), dict(_ATTRIBUTES)

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        return self.decoder(kind)(body, attributes)

    def decoder(self, kind: type[T]) -> Decoder[T]:
        if not is_json_type(kind):  # once per type, not per message
            raise InvalidArgument(f"the JSON codec cannot decode into {describe(kind)}")

        def decoder(body: bytes, attributes: Mapping[str, str]) -> T:
            value = parse_json(body, attributes, kind)
            problem = check_value(value, kind)
            if problem:
                raise DecodeError(f"the body is not a valid {describe(kind)}: {problem}", kind=kind)
            return cast(T, value)

        return decoder

    def __repr__(self) -> str:
        return "JsonCodec()"
