"""Portable filters as Pub/Sub subscription filter expressions.

The one place that spells :mod:`cloudqueue.filters` in Pub/Sub's filter language::

    where("type").equals("order")        attributes.type = "order"
    where("type").one_of("a", "b")       (attributes.type = "a" OR attributes.type = "b")
    where("region").startswith("eu-")    hasPrefix(attributes.region, "eu-")
    where("urgent").exists()             attributes:urgent
    where("test").absent()               NOT attributes:test
    a & b,  a | b                        a AND b,  a OR b (parenthesised when nested)

Names other than plain identifiers are written as quoted strings
(``attributes."iana.org/lang"``); in strings, backslash and double quote are escaped
with a backslash. Pub/Sub forbids mixing AND and OR at one level, so every nested
group is parenthesised. An expression longer than Pub/Sub's 256 bytes is refused
before anything is sent.
"""

from __future__ import annotations

import re

from cloudqueue.errors import InvalidArgument
from cloudqueue.filters import Absent, AllOf, AnyOf, Equals, Exists, Filter, OneOf, Prefix

__all__ = ["MAX_FILTER_BYTES", "expression"]

#: Pub/Sub's limit on a subscription's filter, in UTF-8 bytes.
MAX_FILTER_BYTES = 256

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expression(wanted: Filter) -> str:
    """The Pub/Sub filter for ``wanted``; InvalidArgument when it is too long."""
    text = _render(wanted, nested=False)
    size = len(text.encode("utf-8"))
    if size > MAX_FILTER_BYTES:
        raise InvalidArgument(
            f"the filter ({wanted}) is {size} bytes as a Pub/Sub filter; Pub/Sub accepts at "
            f"most {MAX_FILTER_BYTES} bytes: use fewer conditions or shorter names and values"
        )
    return text


def _render(node: Filter, *, nested: bool) -> str:
    if isinstance(node, Equals):
        return f"{_key(node.name)} = {_string(node.value)}"
    if isinstance(node, OneOf):
        parts = [f"{_key(node.name)} = {_string(value)}" for value in node.values]
        return _join(parts, "OR", nested)
    if isinstance(node, Prefix):
        return f"hasPrefix({_key(node.name)}, {_string(node.prefix)})"
    if isinstance(node, Exists):
        return f"attributes:{_name(node.name)}"
    if isinstance(node, Absent):
        return f"NOT attributes:{_name(node.name)}"
    if isinstance(node, AllOf | AnyOf):
        word = "AND" if isinstance(node, AllOf) else "OR"
        # A one_of is a chain of ORs already: inside an OR it needs no parentheses,
        # and every byte counts against the 256.
        parts = [
            _render(part, nested=not (word == "OR" and isinstance(part, OneOf)))
            for part in node.parts
        ]
        return _join(parts, word, nested)
    raise TypeError(f"not a cloudqueue filter: {type(node).__name__}")


def _join(parts: list[str], word: str, nested: bool) -> str:
    if len(parts) == 1:
        return parts[0]
    text = f" {word} ".join(parts)
    return f"({text})" if nested else text


def _key(name: str) -> str:
    return f"attributes.{_name(name)}"


def _name(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) else _string(name)


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
