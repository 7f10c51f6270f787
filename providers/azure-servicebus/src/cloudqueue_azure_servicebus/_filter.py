"""Portable filters as Service Bus subscription rules.

The one place that spells :mod:`cloudqueue.filters` for Service Bus. A filtered
subscription has one rule, :data:`RULE_NAME`, in place of ``$Default``:

* a conjunction of ``equals`` on distinct attributes becomes a correlation filter on
  application properties (the service evaluates those more cheaply than SQL);
* anything else becomes a SQL filter::

    where("type").equals("order")        type = 'order'
    where("type").one_of("a", "b")       type IN ('a', 'b')
    where("region").startswith("eu_")    region LIKE 'eu!_%' ESCAPE '!'
    where("urgent").exists()             EXISTS(urgent)
    where("test").absent()               NOT EXISTS(test)
    a & b,  a | b                        a AND b,  a OR b (parenthesised when nested)

Attributes travel as application properties of the same name, which an unqualified
SQL name refers to. Names that are not plain identifiers, or are SQL keywords, are
bracketed (``[dotted.name]``, ``]`` doubled); quotes in strings are doubled; ``%``,
``_`` and ``!`` in a prefix are escaped with ``!``. A SQL expression longer than the
service's 1,024 characters is refused before anything is sent.

The attribute ``content-type`` (:data:`cloudqueue.wire.CONTENT_TYPE_ATTRIBUTE`) travels as
the message's native content type (see ``_wire``), so filters on it name the system
property: ``sys.ContentType`` in SQL, ``content_type`` in a correlation filter.

Service Bus looks property names up case-insensitively: attributes whose names
differ only in case are one property to a filter.
"""

from __future__ import annotations

import re
from typing import Any

from azure.servicebus.management import CorrelationRuleFilter, SqlRuleFilter, TrueRuleFilter
from cloudqueue.errors import InvalidArgument
from cloudqueue.filters import Absent, AllOf, AnyOf, Equals, Exists, Filter, OneOf, Prefix
from cloudqueue.wire import CONTENT_TYPE_ATTRIBUTE

__all__ = [
    "DEFAULT_RULE",
    "MAX_SQL_CHARACTERS",
    "RULE_NAME",
    "rule_filter",
    "sql_expression",
]

#: The rule holding a subscription's cloudqueue filter.
RULE_NAME = "cloudqueue-filter"
#: The rule every new subscription has: a true filter, every message passes.
DEFAULT_RULE = "$Default"
#: The service's limit on the text of a SQL filter.
MAX_SQL_CHARACTERS = 1024

# The grammar's regular identifier: a letter, then letters, digits and underscores.
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: Words of the filter grammar, which a bare property name must not be.
_KEYWORDS = frozenset({
    "and", "or", "not", "in", "like", "escape", "is", "null", "exists", "true", "false",
    "set", "remove", "sys", "user",
})
_ESCAPE = "!"


def rule_filter(wanted: Filter | None) -> CorrelationRuleFilter | SqlRuleFilter | TrueRuleFilter:
    """The filter of the rule that makes a subscription deliver what ``wanted`` matches."""
    if wanted is None:
        return TrueRuleFilter()
    properties = _correlation_properties(wanted)
    if properties is not None:
        content_type = properties.pop(CONTENT_TYPE_ATTRIBUTE, None)
        return CorrelationRuleFilter(properties=properties, content_type=content_type)
    return SqlRuleFilter(sql_expression(wanted))


def _correlation_properties(wanted: Filter) -> dict[str, Any] | None:
    """Equal-to tests on distinct names as correlation properties; None otherwise."""
    parts = wanted.parts if isinstance(wanted, AllOf) else (wanted,)
    properties: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, Equals) or part.name.lower() in {n.lower() for n in properties}:
            return None
        properties[part.name] = part.value
    return properties


def sql_expression(wanted: Filter) -> str:
    """The SQL filter for ``wanted``; InvalidArgument when it is too long."""
    text = _render(wanted, nested=False)
    if len(text) > MAX_SQL_CHARACTERS:
        raise InvalidArgument(
            f"the filter ({wanted}) is {len(text)} characters as a Service Bus SQL filter; "
            f"Service Bus accepts at most {MAX_SQL_CHARACTERS}: use fewer conditions or "
            "shorter names and values"
        )
    return text


def _render(node: Filter, *, nested: bool) -> str:
    if isinstance(node, Equals):
        return f"{_name(node.name)} = {_string(node.value)}"
    if isinstance(node, OneOf):
        if len(node.values) == 1:
            return f"{_name(node.name)} = {_string(node.values[0])}"
        return f"{_name(node.name)} IN ({', '.join(map(_string, node.values))})"
    if isinstance(node, Prefix):
        pattern = "".join(_ESCAPE + c if c in "%_" + _ESCAPE else c for c in node.prefix) + "%"
        return f"{_name(node.name)} LIKE {_string(pattern)} ESCAPE '{_ESCAPE}'"
    if isinstance(node, Exists):
        return f"EXISTS({_name(node.name)})"
    if isinstance(node, Absent):
        return f"NOT EXISTS({_name(node.name)})"
    if isinstance(node, AllOf | AnyOf):
        word = "AND" if isinstance(node, AllOf) else "OR"
        text = f" {word} ".join(_render(part, nested=True) for part in node.parts)
        return f"({text})" if nested and len(node.parts) > 1 else text
    raise TypeError(f"not a cloudqueue filter: {type(node).__name__}")


def _name(name: str) -> str:
    if name == CONTENT_TYPE_ATTRIBUTE:
        return "sys.ContentType"
    if _PLAIN_NAME.fullmatch(name) and name.lower() not in _KEYWORDS:
        return name
    return "[" + name.replace("]", "]]") + "]"


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
