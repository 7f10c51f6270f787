"""Portable filters as SNS subscription filter policies (scope ``MessageAttributes``).

The one place that spells :mod:`cloudqueue.filters` in SNS's filter policy language::

    where("type").equals("order")        {"type":["order"]}
    where("type").one_of("a", "b")       {"type":["a","b"]}
    where("region").startswith("eu-")    {"region":[{"prefix":"eu-"}]}
    where("urgent").exists()             {"urgent":[{"exists":true}]}
    where("test").absent()               {"test":[{"exists":false}]}
    a & b  (two attributes)              {"a":[...],"b":[...]}
    a | b  (two attributes)              {"$or":[{"a":[...]},{"b":[...]}]}

SNS ANDs the keys of one object and ORs the values of one key; it cannot AND two
conditions on the same attribute, and ``$or`` is its only way to OR across attributes.
So the filter is brought to disjunctive normal form, with the conditions each
alternative puts on one attribute merged into one test (``equals`` sets intersected,
``startswith`` kept when it admits the values, the longer of two nested prefixes,
``exists`` absorbed, ``absent`` with anything else unsatisfiable). Alternatives that
cannot match are dropped, those another one covers are dropped, and two that differ on
one attribute only are merged into one array, so ``one_of`` and ``a & b`` stay plain
objects. Keys every alternative shares are written once beside ``$or``.

What SNS compares is the attribute value as the SNS producer sends it
(:func:`cloudqueue.wire.encode_sqs_attribute`), and a filter policy sees the value, not
the data type. So a comparison is refused (:class:`~cloudqueue.errors.Unsupported`)
when SNS cannot tell the compared value from another one as sent: the empty value
(sent as ``-``, so also ``-`` itself), a value that is not SQS text (sent base64) and
a value that is the base64 such a value is sent as. Values with a double quote or a
backslash are refused too: AWS documents that attribute filter policies need those
"double escaped", which the local server does not do, so neither spelling can be
verified here and a wrong one would drop messages silently.

Approximated (documented in docs/filters.md): a ``startswith`` prefix made of base64
characters also matches an attribute whose value is not SQS text (control characters)
when the base64 it is sent as starts with that prefix.

A filter whose normal form exceeds :data:`MAX_COMBINATIONS` alternatives at any step
is refused, even where later conditions would have ruled most of them out.

SNS's limits are checked on the result: at most :data:`MAX_KEYS` attribute names, a
total combination of at most :data:`MAX_COMBINATIONS` (the product of the array sizes
of each alternative, summed over the alternatives), at most :data:`MAX_POLICY_BYTES`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudqueue.errors import InvalidArgument, Unsupported
from cloudqueue.filters import (
    Absent,
    AllOf,
    AnyOf,
    Condition,
    Equals,
    Exists,
    Filter,
    OneOf,
    Prefix,
)
from cloudqueue.wire import EMPTY_PLACEHOLDER, RESERVED_PREFIX, is_sqs_text

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_KEYS",
    "MAX_POLICY_BYTES",
    "NEVER_SENT_ATTRIBUTE",
    "filter_policy",
]

#: SNS: "A filter policy can have a maximum of five keys" (attribute names).
MAX_KEYS = 5
#: SNS: "The total combination of values in a filter policy must not exceed 150".
MAX_COMBINATIONS = 150
#: SNS: "The maximum size of a filter policy is 256 KB".
MAX_POLICY_BYTES = 256 * 1024
#: The attribute of the policy that matches nothing. It lies under cloudqueue's reserved
#: prefix, which cloudqueue never sends under this name and portable attributes cannot
#: use, so requiring it keeps every message out (SNS has no "false" policy).
NEVER_SENT_ATTRIBUTE = RESERVED_PREFIX + "no-message-has-this"

# Field names that stop SNS from reading "$or" as OR when an object in it uses one.
_KEYWORDS = frozenset({
    "anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix", "suffix",
    "wildcard",
})
_OR = "$or"
# Alternatives held while bringing a filter to normal form. Each one counts at least 1
# towards MAX_COMBINATIONS, so more cannot fit unless a later AND rules most of them out;
# refusing there bounds the quadratic simplification.
_MAX_ALTERNATIVES = MAX_COMBINATIONS


def filter_policy(f: Filter) -> str:
    """The SNS filter policy (scope ``MessageAttributes``) for ``f``, as compact JSON.

    Unsupported names a compared value SNS cannot tell apart as sent; InvalidArgument
    names the SNS limit the translation exceeds, and its figure.
    """
    for condition in f.conditions():
        _check_expressible(condition)
    alternatives = _alternatives(f)
    policy = _render(alternatives, f)
    _check_limits(policy, f)
    return json.dumps(policy, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# -- what SNS can express ----------------------------------------------------------------


def _check_expressible(condition: Filter) -> None:
    if not isinstance(condition, Equals | OneOf | Prefix | Exists | Absent):
        raise TypeError(f"not a cloudqueue filter condition: {type(condition).__name__}")
    if condition.name == _OR:
        raise Unsupported(
            f"the filter ({condition}) names the attribute {_OR!r}, which SNS filter policies "
            "reserve for OR across attributes"
        )
    if isinstance(condition, Equals):
        _check_value(condition, condition.value, "compare with")
    elif isinstance(condition, OneOf):
        for value in condition.values:
            _check_value(condition, value, "compare with")
    elif isinstance(condition, Prefix):
        _check_value(condition, condition.prefix, "match the prefix")


def _check_value(condition: Filter, value: str, verb: str) -> None:
    why = _unexpressible(value)
    if why:
        raise Unsupported(f"SNS filter policies cannot {verb} {value!r} ({condition}): {why}")


def _unexpressible(value: str) -> str | None:
    """Why SNS cannot compare with ``value`` as the SNS producer sends attributes, or None."""
    if not value:
        return (
            "SNS refuses an empty attribute value, so cloudqueue sends it as "
            f"{EMPTY_PLACEHOLDER!r} with its own data type, and a filter policy sees only "
            "the value"
        )
    if value == EMPTY_PLACEHOLDER:
        return (
            f"cloudqueue sends the empty value as {EMPTY_PLACEHOLDER!r} too, and a filter "
            "policy cannot tell the two apart (it sees the value, not the data type)"
        )
    if not is_sqs_text(value):
        return (
            "the value is not SQS text (it has control characters), so cloudqueue sends it "
            "base64-encoded and a filter policy never sees it"
        )
    if _sent_as_base64_of_another(value):
        return (
            "it is the base64 text cloudqueue sends for a value that is not SQS text, and a "
            "filter policy cannot tell the two apart (it sees the value, not the data type)"
        )
    if '"' in value or "\\" in value:
        return (
            "AWS documents that double quotes and backslashes in attribute filter policies "
            "must be double escaped, which the local SNS server does not do; cloudqueue "
            "refuses rather than risk dropping messages"
        )
    return None


def _sent_as_base64_of_another(value: str) -> bool:
    """True when ``value`` is exactly the text the producer sends for a non-SQS-text value."""
    try:
        decoded = base64.b64decode(value.encode("ascii"), validate=True)
        text = decoded.decode("utf-8")
    except (UnicodeError, binascii.Error):
        return False
    canonical = base64.b64encode(decoded).decode("ascii") == value
    return canonical and bool(text) and not is_sqs_text(text)


# -- one attribute's test within one alternative ------------------------------------------


@dataclass(frozen=True, slots=True)
class _Test:
    """What one attribute must be: missing (``present`` False), present with any value
    (no ``values`` nor ``prefixes``), or present and one of ``values`` or starting with
    one of ``prefixes``."""

    present: bool
    values: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()

    @property
    def restricted(self) -> bool:
        return bool(self.values or self.prefixes)

    def admits(self, value: str) -> bool:
        return value in self.values or any(value.startswith(p) for p in self.prefixes)

    def implies(self, other: _Test) -> bool:
        """Every attribute state passing this test passes ``other``."""
        if not other.present or not self.present:
            return self.present == other.present
        if not other.restricted:
            return True
        if not self.restricted:
            return False
        return all(other.admits(v) for v in self.values) and all(
            any(p.startswith(q) for q in other.prefixes) for p in self.prefixes
        )

    def size(self) -> int:
        """Values in its array, towards SNS's total combination."""
        return max(1, len(self.values) + len(self.prefixes))

    def to_policy(self) -> list[Any]:
        if not self.present:
            return [{"exists": False}]
        if not self.restricted:
            return [{"exists": True}]
        return [*sorted(self.values), *({"prefix": p} for p in sorted(self.prefixes))]


_ABSENT = _Test(present=False)
_EXISTS = _Test(present=True)


def _restricted(values: Iterable[str], prefixes: Iterable[str]) -> _Test | None:
    """A present-with-values test without redundant parts; None when nothing passes."""
    kept_prefixes = set(prefixes)
    kept_prefixes = {
        p for p in kept_prefixes if not any(p != q and p.startswith(q) for q in kept_prefixes)
    }
    kept_values = {v for v in values if not any(v.startswith(p) for p in kept_prefixes)}
    if not kept_values and not kept_prefixes:
        return None
    return _Test(True, frozenset(kept_values), frozenset(kept_prefixes))


def _both(a: _Test, b: _Test) -> _Test | None:
    """The test passing exactly when ``a`` and ``b`` both pass; None when none can."""
    if not a.present or not b.present:
        return a if a.present == b.present else None
    if not a.restricted:
        return b
    if not b.restricted:
        return a
    values = {v for v in a.values if b.admits(v)} | {v for v in b.values if a.admits(v)}
    prefixes = set()
    for p in a.prefixes:
        for q in b.prefixes:
            if p.startswith(q):
                prefixes.add(p)
            elif q.startswith(p):
                prefixes.add(q)
    return _restricted(values, prefixes)


def _either(a: _Test, b: _Test) -> _Test | None:
    """One array passing when ``a`` or ``b`` passes, or None when SNS needs two objects
    (a missing attribute is not written in the same array as values, to stay within
    what the documentation shows)."""
    if not a.present or not b.present:
        return a if a.present == b.present else None
    if not a.restricted or not b.restricted:
        return _EXISTS
    return _restricted(a.values | b.values, a.prefixes | b.prefixes)


def _test_of(condition: Filter) -> _Test:
    if isinstance(condition, Equals):
        return _Test(True, frozenset({condition.value}))
    if isinstance(condition, OneOf):
        return _Test(True, frozenset(condition.values))
    if isinstance(condition, Prefix):
        return _Test(True, prefixes=frozenset({condition.prefix}))
    if isinstance(condition, Exists):
        return _EXISTS
    if isinstance(condition, Absent):
        return _ABSENT
    raise TypeError(f"not a cloudqueue filter condition: {type(condition).__name__}")


# -- disjunctive normal form ------------------------------------------------------------------

#: One alternative: the test each named attribute must pass (all of them).
_Alternative = Mapping[str, _Test]


def _alternatives(node: Filter) -> list[_Alternative]:
    """Alternatives whose OR is ``node``, simplified; empty when nothing matches."""
    if isinstance(node, AnyOf):
        return _simplify([alt for part in node.parts for alt in _alternatives(part)])
    if isinstance(node, AllOf):
        result: list[_Alternative] = [{}]
        for part in node.parts:
            right = _alternatives(part)
            merged = (_conjoin(left, alt) for left in result for alt in right)
            result = _simplify([alt for alt in merged if alt is not None])
            if len(result) > _MAX_ALTERNATIVES:
                raise InvalidArgument(
                    f"the filter ({node}) expands to more than {_MAX_ALTERNATIVES} alternatives "
                    f"as an SNS filter policy; SNS allows a total combination of at most "
                    f"{MAX_COMBINATIONS}: use fewer ORs under ANDs"
                )
        return result
    if not isinstance(node, Condition):
        raise TypeError(f"not a cloudqueue filter: {type(node).__name__}")
    return [{node.name: _test_of(node)}]


def _conjoin(left: _Alternative, right: _Alternative) -> _Alternative | None:
    merged = dict(left)
    for name, test in right.items():
        if name in merged:
            both = _both(merged[name], test)
            if both is None:
                return None
            merged[name] = both
        else:
            merged[name] = test
    return merged


def _covers(wide: _Alternative, narrow: _Alternative) -> bool:
    """Every message ``narrow`` matches, ``wide`` matches."""
    return all(name in narrow and narrow[name].implies(test) for name, test in wide.items())


def _simplify(alternatives: list[_Alternative]) -> list[_Alternative]:
    unique: list[_Alternative] = []
    for alt in alternatives:
        if alt not in unique:
            unique.append(alt)
    # Drop an alternative another one covers (of two covering each other, the later).
    kept = [
        narrow for i, narrow in enumerate(unique)
        if not any(
            j != i and _covers(wide, narrow) and (j < i or not _covers(narrow, wide))
            for j, wide in enumerate(unique)
        )
    ]
    # Merge alternatives that differ on one attribute into one array, until none do.
    merged_any = True
    while merged_any:
        merged_any = False
        i = 0
        while i < len(kept):
            j = i + 1
            while j < len(kept):
                merged = _merge_one_difference(kept[i], kept[j])
                if merged is None:
                    j += 1
                else:
                    kept[i] = merged
                    del kept[j]
                    merged_any = True
            i += 1
    return kept


def _merge_one_difference(a: _Alternative, b: _Alternative) -> _Alternative | None:
    if a.keys() != b.keys():
        return None
    differing = [name for name in a if a[name] != b[name]]
    if len(differing) != 1:
        return None
    (name,) = differing
    either = _either(a[name], b[name])
    if either is None:
        return None
    return {**a, name: either}


# -- the policy ---------------------------------------------------------------------------------


def _render(alternatives: list[_Alternative], wanted: Filter) -> dict[str, Any]:
    if not alternatives:
        return {NEVER_SENT_ATTRIBUTE: [{"exists": True}]}
    if len(alternatives) == 1:
        return {name: test.to_policy() for name, test in alternatives[0].items()}
    first = alternatives[0]
    shared = {
        name: test for name, test in first.items()
        if all(alt.get(name) == test for alt in alternatives[1:])
    }
    branches = [
        {name: test.to_policy() for name, test in alt.items() if name not in shared}
        for alt in alternatives
    ]
    for branch in branches:
        keyword = next((name for name in branch if name in _KEYWORDS), None)
        if keyword is not None:
            raise Unsupported(
                f"the filter ({wanted}) needs an SNS \"$or\" with the attribute {keyword!r} in "
                f"it, and SNS does not read \"$or\" as OR when an object in it names one of its "
                f"keywords ({', '.join(sorted(_KEYWORDS))})"
            )
    policy: dict[str, Any] = {name: test.to_policy() for name, test in shared.items()}
    policy[_OR] = branches
    return policy


def _check_limits(policy: Mapping[str, Any], wanted: Filter) -> None:
    branches = policy.get(_OR, [{}])
    shared = {name: values for name, values in policy.items() if name != _OR}
    names = set(shared).union(*(set(branch) for branch in branches))
    if len(names) > MAX_KEYS:
        raise InvalidArgument(
            f"the filter ({wanted}) tests {len(names)} attributes; an SNS filter policy has "
            f"at most {MAX_KEYS} keys"
        )
    common = 1
    for values in shared.values():
        common *= len(values)
    combinations = 0
    for branch in branches:
        product = common
        for values in branch.values():
            product *= len(values)
        combinations += product
    if combinations > MAX_COMBINATIONS:
        raise InvalidArgument(
            f"the filter ({wanted}) has a total combination of {combinations} as an SNS filter "
            f"policy (values per key multiplied, summed over the $or alternatives); SNS allows "
            f"at most {MAX_COMBINATIONS}"
        )
    size = len(json.dumps(policy, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        raise InvalidArgument(
            f"the filter ({wanted}) is {size} bytes as an SNS filter policy; SNS allows at "
            f"most {MAX_POLICY_BYTES} bytes"
        )
