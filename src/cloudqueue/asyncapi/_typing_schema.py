"""JSON Schema for dataclasses and typing annotations, without pydantic.

Used when pydantic is not installed (with it, ``TypeAdapter`` describes these types,
which covers more of them). Covers what message payloads usually hold: JSON scalars,
``list``/``set``/``tuple``/``dict`` with ``str`` keys, optional and union types,
``Literal``, enums, datetimes, UUIDs, decimals and nested dataclasses. Anything else
raises ``InvalidArgument`` naming the type, rather than describing it wrongly.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import types
import typing
import uuid
from typing import Any

from ..errors import InvalidArgument

__all__ = ["typing_schema"]

_SCALARS: dict[object, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    # A decimal travels as a string, so that no digit is lost to a float.
    decimal.Decimal: {"type": "string", "format": "decimal"},
}


def typing_schema(kind: object, definitions: dict[str, dict[str, Any]], ref_template: str) -> dict[str, Any]:
    """The schema of ``kind``; each dataclass goes into ``definitions`` under its name
    and is referred to through ``ref_template`` (``"...{model}"``)."""
    if kind is Any or kind is object:
        return {}
    if kind in _SCALARS:
        return dict(_SCALARS[kind])
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _dataclass(kind, definitions, ref_template)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return {"title": kind.__name__, "enum": [member.value for member in kind]}
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        return {"enum": list(arguments)}
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [typing_schema(argument, definitions, ref_template) for argument in arguments]}
    if origin is typing.Annotated:
        return typing_schema(arguments[0], definitions, ref_template)
    if origin in (list, set, frozenset) or kind in (list, set, frozenset):
        items = typing_schema(arguments[0], definitions, ref_template) if arguments else {}
        schema: dict[str, Any] = {"type": "array", "items": items}
        if origin in (set, frozenset) or kind in (set, frozenset):
            schema["uniqueItems"] = True
        return schema
    if origin is tuple or kind is tuple:
        return _tuple(arguments, definitions, ref_template)
    if origin is dict or kind is dict:
        if arguments and arguments[0] is not str:
            raise InvalidArgument(f"cannot describe {kind!r} in JSON Schema: JSON object keys are strings")
        values = typing_schema(arguments[1], definitions, ref_template) if arguments else {}
        return {"type": "object", "additionalProperties": values}
    raise InvalidArgument(
        f"cannot describe {kind!r} in JSON Schema without pydantic: supported are JSON scalars, "
        "list/set/tuple/dict[str, ...], unions, Literal, enums, datetime, UUID, Decimal and "
        "dataclasses (install pydantic for more)"
    )


def _tuple(
    arguments: tuple[Any, ...], definitions: dict[str, dict[str, Any]], ref_template: str
) -> dict[str, Any]:
    if not arguments or (len(arguments) == 2 and arguments[1] is Ellipsis):
        items = typing_schema(arguments[0], definitions, ref_template) if arguments else {}
        return {"type": "array", "items": items}
    # Draft 07 spells a fixed-length tuple as an items array (2020-12's prefixItems).
    return {
        "type": "array",
        "items": [typing_schema(argument, definitions, ref_template) for argument in arguments],
        "minItems": len(arguments),
        "maxItems": len(arguments),
    }


def _dataclass(kind: type, definitions: dict[str, dict[str, Any]], ref_template: str) -> dict[str, Any]:
    name = kind.__name__
    reference = {"$ref": ref_template.format(model=name)}
    if name in definitions:
        return reference
    definitions[name] = {}  # claimed first, so that a recursive dataclass ends
    hints = typing.get_type_hints(kind, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(kind):
        properties[field.name] = typing_schema(hints[field.name], definitions, ref_template)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    schema: dict[str, Any] = {"title": name, "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if kind.__doc__ and not kind.__doc__.startswith(f"{name}("):  # not the generated signature
        schema["description"] = kind.__doc__.strip()
    definitions[name] = schema
    return reference
