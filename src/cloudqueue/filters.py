"""Portable subscription filters on message attributes.

A filter decides which messages published to a topic a subscription receives::

    from cloudqueue import where

    cloudqueue.declare(
        "pubsub://my-project/orders?subscription=eu-orders",
        filter=where("type").equals("order") & where("region").startswith("eu-"),
    )

Conditions look at the message's ``attributes`` (str to str) only:

* ``where(name).equals(value)``: the attribute is present and equals ``value``;
* ``where(name).one_of(v1, v2, ...)``: present and equal to one of them;
* ``where(name).startswith(prefix)``: present and starts with ``prefix``;
* ``where(name).exists()`` / ``where(name).absent()``: present / missing.

``&`` and ``|`` combine them (:class:`AllOf`, :class:`AnyOf`). There is no general
negation and no "not equals", because the clouds disagree on whether a message
without the attribute passes; ``absent()`` is the one negation every provider spells
the same way.

Every node is an immutable, hashable value. :meth:`Filter.matches` is the reference
semantics: the memory and SQLite providers evaluate it, and the contract suite uses
it as the oracle for the cloud providers' translations. :meth:`Filter.to_json` and
:meth:`Filter.from_json` give the form the CLI takes and SQLite stores.

Limits (checked when a filter is built, so that every provider can hold it): names
are non-empty, at most :data:`MAX_NAME_BYTES` UTF-8 bytes and not under
:data:`cloudqueue.wire.RESERVED_PREFIX`; values at most :data:`MAX_VALUE_BYTES`;
a filter has at most :data:`MAX_CONDITIONS` compared values and at most
:data:`MAX_DEPTH` levels of ``&``/``|``. Providers check their own limits (Pub/Sub's
256-byte expression, Service Bus's 1,024-character SQL) when they translate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument
from .wire import RESERVED_PREFIX

__all__ = [
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_VALUE_BYTES",
    "Absent",
    "AllOf",
    "AnyOf",
    "Condition",
    "Equals",
    "Exists",
    "Filter",
    "OneOf",
    "Prefix",
    "where",
]

#: Longest attribute name, in UTF-8 bytes (every provider's attribute name limit).
MAX_NAME_BYTES = 256
#: Longest compared value or prefix, in UTF-8 bytes (Pub/Sub's attribute value limit).
MAX_VALUE_BYTES = 1024
#: Most conditions in one filter, each value of ``one_of`` counting as one.
MAX_CONDITIONS = 32
#: Most levels of ``&``/``|`` nesting (``a & (b | (c & d))`` has 3).
MAX_DEPTH = 3


class Filter:
    """A condition on message attributes. Build one with :func:`where`."""

    __slots__ = ()

    def __and__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return AllOf((self, other))

    def __or__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return AnyOf((self, other))

    def matches(self, attributes: Mapping[str, str]) -> bool:
        """Whether a message with these attributes passes (the reference semantics)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The JSON form, e.g. ``{"attribute": "type", "equals": "order"}``."""
        raise NotImplementedError

    def to_json_text(self) -> str:
        """:meth:`to_json` as compact text, the same for equal filters."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(data: object) -> Filter:
        """A filter from its JSON form (a dict, or JSON text); InvalidArgument says
        where and why the form is wrong."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(
                    f"filter is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                ) from None
        return _from_json(data, "$")

    def conditions(self) -> Iterator[Condition]:
        """The conditions (leaves) of this filter, left to right."""
        raise NotImplementedError

    def depth(self) -> int:
        """Levels of ``&``/``|`` nesting; 0 for a single condition."""
        return 0


# -- conditions ------------------------------------------------------------------------


class Condition(Filter):
    """A test of one attribute."""

    __slots__ = ()
    name: str

    def conditions(self) -> Iterator[Condition]:
        yield self

    def size(self) -> int:
        """How many values it compares, towards :data:`MAX_CONDITIONS`."""
        return 1


@dataclass(frozen=True, slots=True)
class Equals(Condition):
    """The attribute is present and equal to ``value``."""

    name: str
    value: str

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_value(self.value, f"the value compared with {self.name!r}")

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return attributes.get(self.name) == self.value

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.name, "equals": self.value}

    def __str__(self) -> str:
        return f"{_show_name(self.name)} = {_show(self.value)}"


@dataclass(frozen=True, slots=True)
class OneOf(Condition):
    """The attribute is present and equal to one of ``values`` (kept sorted, without repeats)."""

    name: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_name(self.name)
        if isinstance(self.values, str) or not isinstance(self.values, Iterable):
            raise InvalidArgument(
                f"one_of({self.name!r}) takes several str values, not {type(self.values).__name__}"
            )
        values = tuple(self.values)
        for value in values:
            _check_value(value, f"a value compared with {self.name!r}")
        if not values:
            raise InvalidArgument(f"one_of on {self.name!r} needs at least one value")
        if len(set(values)) > MAX_CONDITIONS:
            raise InvalidArgument(
                f"one_of on {self.name!r} has {len(set(values))} values; a filter compares "
                f"at most {MAX_CONDITIONS}"
            )
        object.__setattr__(self, "values", tuple(sorted(set(values))))

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return attributes.get(self.name) in self.values

    def size(self) -> int:
        return len(self.values)

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.name, "one_of": list(self.values)}

    def __str__(self) -> str:
        return f"{_show_name(self.name)} in ({', '.join(map(_show, self.values))})"


@dataclass(frozen=True, slots=True)
class Prefix(Condition):
    """The attribute is present and starts with ``prefix`` (not empty: use :class:`Exists`)."""

    name: str
    prefix: str

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_value(self.prefix, f"the prefix of {self.name!r}")
        if not self.prefix:
            raise InvalidArgument(
                f"the prefix of {self.name!r} is empty; every value starts with it: "
                f"use where({self.name!r}).exists()"
            )

    def matches(self, attributes: Mapping[str, str]) -> bool:
        value = attributes.get(self.name)
        return value is not None and value.startswith(self.prefix)

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.name, "starts_with": self.prefix}

    def __str__(self) -> str:
        return f"{_show_name(self.name)} starts with {_show(self.prefix)}"


@dataclass(frozen=True, slots=True)
class Exists(Condition):
    """The attribute is present (with any value, the empty one included)."""

    name: str

    def __post_init__(self) -> None:
        _check_name(self.name)

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return self.name in attributes

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.name, "exists": True}

    def __str__(self) -> str:
        return f"{_show_name(self.name)} exists"


@dataclass(frozen=True, slots=True)
class Absent(Condition):
    """The attribute is missing."""

    name: str

    def __post_init__(self) -> None:
        _check_name(self.name)

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return self.name not in attributes

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.name, "absent": True}

    def __str__(self) -> str:
        return f"{_show_name(self.name)} is absent"


# -- combinations ----------------------------------------------------------------------


class _Combination(Filter):
    __slots__ = ()
    parts: tuple[Filter, ...]
    _word = ""

    def _normalise(self) -> None:
        """Flatten nested combinations of the same kind and check the limits."""
        if isinstance(self.parts, Filter) or not isinstance(self.parts, Iterable):
            raise InvalidArgument(
                f"{type(self).__name__} takes a sequence of filters, not {type(self.parts).__name__}"
            )
        flat: list[Filter] = []
        for part in self.parts:
            if not isinstance(part, Filter) or type(part) in (Filter, Condition, _Combination):
                raise InvalidArgument(
                    f"{type(self).__name__} combines filters built with where(), "
                    f"not {type(part).__name__}"
                )
            flat.extend(part.parts if type(part) is type(self) else (part,))
        if not flat:
            raise InvalidArgument(f"{type(self).__name__} needs at least one filter")
        object.__setattr__(self, "parts", tuple(flat))
        count = sum(condition.size() for condition in self.conditions())
        if count > MAX_CONDITIONS:
            raise InvalidArgument(
                f"the filter has {count} conditions; at most {MAX_CONDITIONS} are allowed "
                "(each one_of value counts as one)"
            )
        if self.depth() > MAX_DEPTH:
            raise InvalidArgument(
                f"the filter nests and/or {self.depth()} levels deep; at most {MAX_DEPTH} are allowed"
            )

    def conditions(self) -> Iterator[Condition]:
        for part in self.parts:
            yield from part.conditions()

    def depth(self) -> int:
        return 1 + max(part.depth() for part in self.parts)

    def __str__(self) -> str:
        shown = [
            f"({part})" if isinstance(part, _Combination) and len(part.parts) > 1 else str(part)
            for part in self.parts
        ]
        return f" {self._word} ".join(shown)


@dataclass(frozen=True, slots=True)
class AllOf(_Combination):
    """Every part holds (``a & b``)."""

    parts: tuple[Filter, ...]
    _word = "and"

    def __post_init__(self) -> None:
        self._normalise()

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return all(part.matches(attributes) for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {"all": [part.to_json() for part in self.parts]}


@dataclass(frozen=True, slots=True)
class AnyOf(_Combination):
    """At least one part holds (``a | b``)."""

    parts: tuple[Filter, ...]
    _word = "or"

    def __post_init__(self) -> None:
        self._normalise()

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return any(part.matches(attributes) for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {"any": [part.to_json() for part in self.parts]}


# -- building ----------------------------------------------------------------------------


class where:  # reads as a function: where("type").equals("order")
    """Conditions on the attribute ``name``: ``where("type").equals("order")``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        _check_name(name)
        self.name = name

    def equals(self, value: str) -> Equals:
        return Equals(self.name, value)

    def one_of(self, *values: str) -> OneOf:
        return OneOf(self.name, values)

    def startswith(self, prefix: str) -> Prefix:
        return Prefix(self.name, prefix)

    def exists(self) -> Exists:
        return Exists(self.name)

    def absent(self) -> Absent:
        return Absent(self.name)

    def __repr__(self) -> str:
        return f"where({self.name!r})"


# -- validation and display ----------------------------------------------------------------


def _check_name(name: object) -> None:
    if type(name) is not str or not name:
        given = "''" if name == "" else type(name).__name__
        raise InvalidArgument(f"a filter's attribute name must be a non-empty str, not {given}")
    size = len(_utf8(name, f"attribute name {name[:40]!r}"))
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(
            f"attribute name {name[:40]!r}... is {size} bytes; at most {MAX_NAME_BYTES} are allowed"
        )
    if name.startswith(RESERVED_PREFIX):
        raise InvalidArgument(
            f"attribute name {name!r} uses the prefix {RESERVED_PREFIX!r}, reserved for "
            "cloudqueue's own markers, which filters cannot see"
        )


def _check_value(value: object, what: str) -> None:
    if type(value) is not str:
        raise InvalidArgument(f"{what} must be a str, not {type(value).__name__}")
    size = len(_utf8(value, what))
    if size > MAX_VALUE_BYTES:
        raise InvalidArgument(f"{what} is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidArgument(
            f"{what} is not valid text: character {error.start} is a lone surrogate, "
            "which UTF-8 cannot encode"
        ) from None


def _show(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _show_name(name: str) -> str:
    return name if name.replace("_", "a").replace("-", "a").replace(".", "a").isalnum() else _show(name)


# -- JSON form -------------------------------------------------------------------------------

_CONDITION_KEYS = {"equals", "one_of", "starts_with", "exists", "absent"}


def _from_json(data: object, path: str) -> Filter:
    if not isinstance(data, dict):
        raise InvalidArgument(f"filter JSON at {path} must be an object, not {_json_type(data)}")
    keys = set(data)
    if keys in ({"all"}, {"any"}):
        (key,) = keys
        parts = data[key]
        if not isinstance(parts, list):
            raise InvalidArgument(
                f"filter JSON at {path}.{key} must be a list of filters, not {_json_type(parts)}"
            )
        built = tuple(_from_json(part, f"{path}.{key}[{i}]") for i, part in enumerate(parts))
        try:
            return AllOf(built) if key == "all" else AnyOf(built)
        except InvalidArgument as exc:
            raise InvalidArgument(f"filter JSON at {path}: {exc}") from None
    tests = keys & _CONDITION_KEYS
    if "attribute" not in keys or len(tests) != 1 or len(keys) != 2:
        raise InvalidArgument(
            f"filter JSON at {path} must be {{\"all\": [...]}}, {{\"any\": [...]}} or "
            f"{{\"attribute\": NAME, TEST: ...}} with one TEST of {', '.join(sorted(_CONDITION_KEYS))}; "
            f"got the keys {', '.join(sorted(map(str, keys))) or 'none'}"
        )
    (test,) = tests
    name, argument = data["attribute"], data[test]
    try:
        if test == "equals":
            return Equals(name, argument)
        if test == "starts_with":
            return Prefix(name, argument)
        if test == "one_of":
            if not isinstance(argument, list):
                raise InvalidArgument(f"one_of takes a list of str, not {_json_type(argument)}")
            return OneOf(name, tuple(argument))
        if argument is not True:
            raise InvalidArgument(f'"{test}" takes true, not {json.dumps(argument)[:40]}')
        return Exists(name) if test == "exists" else Absent(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"filter JSON at {path}: {exc}") from None


def _json_type(value: object) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (list, "a list"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__
