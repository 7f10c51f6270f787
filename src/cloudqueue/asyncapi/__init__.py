"""AsyncAPI 3.0.0 documents of worker apps: ``cloudqueue asyncapi module:app``.

::

    from cloudqueue.asyncapi import build_document, validate

    document = build_document(app, title="orders")   # JSON-ready dict
    validate(document)                                # needs the jsonschema package

One channel per handler URL and per ``app.publishes(url, Type)``; a ``receive``
operation per handler, a ``send`` operation per publication; each message carries the
JSON Schema of its type (pydantic, msgspec, dataclasses, typing annotations,
CloudEvents). See docs/asyncapi.md.
"""

from __future__ import annotations

import importlib
import json
from importlib import resources
from typing import Any

from ..errors import InvalidArgument
from ._document import ASYNCAPI_VERSION, DescribedApp, build_document

__all__ = ["ASYNCAPI_VERSION", "DescribedApp", "build_document", "spec_schema", "validate"]


def spec_schema() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 JSON Schema shipped with cloudqueue (see spec/README.md)."""
    text = resources.files(__package__).joinpath("spec", "asyncapi-3.0.0.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(document: dict[str, Any]) -> None:
    """Raise ``InvalidArgument`` listing where ``document`` breaks the AsyncAPI 3.0.0 schema."""
    try:  # optional, and typed only by a stub package: load it as a plain module
        jsonschema = importlib.import_module("jsonschema")
    except ImportError:
        raise InvalidArgument("validating an AsyncAPI document needs the jsonschema package") from None
    validator = jsonschema.Draft7Validator(spec_schema())
    problems = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    if problems:
        lines = [
            f"/{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}" for error in problems[:10]
        ]
        raise InvalidArgument(f"not a valid AsyncAPI {ASYNCAPI_VERSION} document ({len(problems)} problems): "
                              + "; ".join(lines))
