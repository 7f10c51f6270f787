"""The JSON Schema of a handler's payload type, as an AsyncAPI message payload.

Each library describes its own types (pydantic ``model_json_schema``, msgspec
``json.schema_components``, pydantic's ``TypeAdapter`` for dataclasses and typing
annotations, else :mod:`._typing_schema`); named types land in ``components/schemas``
and the payload refers to them, so that two messages sharing a type share its schema.
AsyncAPI schemas are a superset of JSON Schema draft 07: the few 2020-12 keywords the
libraries emit are rewritten to their draft 07 spelling.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, cast

from ._cloudevents import CLOUDEVENT_CONTENT_TYPE, CLOUDEVENT_SCHEMA, is_cloudevent_type
from ._typing_schema import typing_schema

__all__ = ["JSON_CONTENT_TYPE", "REF_TEMPLATE", "Payload", "payload_for"]

REF_TEMPLATE = "#/components/schemas/{model}"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Payload:
    """What an AsyncAPI message says about a payload type."""

    #: The message's name (the type's name; "Raw" for untyped handlers).
    name: str
    content_type: str
    #: The payload's schema; None: the body is opaque bytes.
    schema: dict[str, Any] | None
    #: Named schemas the payload refers to, for ``components/schemas``.
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str | None = None


RAW = Payload(name="Raw", content_type="application/octet-stream", schema=None,
              description="Bytes the handler reads itself (an untyped handler).")
TEXT = Payload(name="Text", content_type="text/plain; charset=utf-8", schema={"type": "string"})


def payload_for(kind: object | None) -> Payload:
    """The payload of messages decoded into ``kind`` (None: a raw handler)."""
    if kind is None or kind is bytes:
        return RAW
    if kind is str:  # decoded as UTF-8 text, by no codec
        return TEXT
    if is_cloudevent_type(kind):
        return Payload(name="CloudEvent", content_type=CLOUDEVENT_CONTENT_TYPE,
                       schema=dict(CLOUDEVENT_SCHEMA),
                       description="A CloudEvents 1.0 event in structured mode (JSON format).")
    name = kind.__name__ if isinstance(kind, type) else _spelled(kind)
    top, definitions = _describe(kind)
    definitions = {key: _draft07(value) for key, value in definitions.items()}
    top = _draft07(top)
    if isinstance(kind, type) and "$ref" not in top and _is_named(kind):
        # The named type itself goes to components too: senders and receivers share it.
        definitions[kind.__name__] = top
        top = {"$ref": REF_TEMPLATE.format(model=kind.__name__)}
    return Payload(name=name, content_type=JSON_CONTENT_TYPE, schema=top, definitions=definitions,
                   description=_doc(kind))


def _describe(kind: object) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``kind``'s schema and its named definitions, by the library that owns the type."""
    if _is_pydantic_model(kind):
        schema = dict(kind.model_json_schema(ref_template=REF_TEMPLATE))  # type: ignore[attr-defined]
        return schema, schema.pop("$defs", {})
    if _is_msgspec_struct(kind):
        import msgspec

        (schema,), components = msgspec.json.schema_components(
            (kind,), ref_template=REF_TEMPLATE.replace("{model}", "{name}"))
        return schema, components
    try:
        from pydantic import TypeAdapter
    except ImportError:  # pydantic is optional: describe common types ourselves
        definitions: dict[str, dict[str, Any]] = {}
        return typing_schema(kind, definitions, REF_TEMPLATE), definitions
    schema = dict(TypeAdapter(cast(Any, kind)).json_schema(ref_template=REF_TEMPLATE))
    return schema, schema.pop("$defs", {})


def _is_pydantic_model(kind: object) -> bool:
    pydantic = sys.modules.get("pydantic")  # a model's module imported it already
    return pydantic is not None and isinstance(kind, type) and issubclass(kind, pydantic.BaseModel)


def _is_msgspec_struct(kind: object) -> bool:
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _is_named(kind: type) -> bool:
    return dataclasses.is_dataclass(kind) or _is_pydantic_model(kind) or _is_msgspec_struct(kind)


def _doc(kind: object) -> str | None:
    doc = getattr(kind, "__doc__", None) if isinstance(kind, type) else None
    if not doc or kind.__module__ == "builtins" or doc.startswith(f"{kind.__name__}("):  # type: ignore[attr-defined]
        return None  # no docstring, a builtin's, or a dataclass's generated signature
    base_docs = {getattr(base, "__doc__", None) for base in kind.__mro__[1:]}  # type: ignore[attr-defined]
    return None if doc in base_docs else inspect.cleandoc(doc)


def _spelled(kind: object) -> str:
    """A message name for an annotation such as ``dict[str, int]``: ``DictOfStrAndInt``."""
    if kind is type(None):
        return "None"
    if isinstance(kind, type):
        return kind.__name__[:1].upper() + kind.__name__[1:]
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin is None:
        words = re.split(r"[^A-Za-z0-9]+", repr(kind).replace("typing.", ""))
        return "".join(word for word in words if word) or "Payload"
    if origin is typing.Union or origin is types.UnionType:
        return "Or".join(_spelled(argument) for argument in arguments)
    return f"{_spelled(origin)}Of{'And'.join(_spelled(argument) for argument in arguments)}"


def _draft07(schema: Any) -> Any:
    """``schema`` with 2020-12's ``prefixItems`` spelled as draft 07's ``items`` array."""
    if isinstance(schema, list):
        return [_draft07(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rewritten = {key: _draft07(value) for key, value in schema.items()}
    if "prefixItems" in rewritten:
        if "items" in rewritten:  # 2020-12: the items after the prefix
            rewritten["additionalItems"] = rewritten.pop("items")
        rewritten["items"] = rewritten.pop("prefixItems")
    return rewritten
