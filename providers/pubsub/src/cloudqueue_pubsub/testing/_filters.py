"""Pub/Sub subscription filters on message attributes.

The documented language, parsed into a predicate over the attribute map::

    attributes:KEY                     the attribute exists
    attributes.KEY = "v"               it exists and equals "v"
    attributes.KEY != "v"              it is missing or differs from "v"
    hasPrefix(attributes.KEY, "p")     it exists and starts with "p"
    NOT x  (or -x),  x AND y,  x OR y,  ( x )

Keys that are not plain identifiers are written quoted: ``attributes."iana.org/lang" = "en"``.
As in the real service, AND and OR cannot be mixed at one level without parentheses, and a filter
is at most 256 bytes. Anything else is refused with :class:`InvalidArgument`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ._errors import InvalidArgument

Predicate = Callable[[Mapping[str, str]], bool]

MAX_FILTER_BYTES = 256

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>!=|=|:|\(|\)|,|\.|-)
    | (?P<word>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)
    )""",
    re.VERBOSE,
)


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise InvalidArgument(f"Invalid filter: unexpected character at {position}: {text!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append((kind, _unquote(value) if kind == "string" else value))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the token list; each method returns a predicate."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._position = 0

    def _error(self, why: str) -> InvalidArgument:
        return InvalidArgument(f"Invalid filter {self._text!r}: {why}")

    def _peek(self) -> tuple[str, str] | None:
        if self._position < len(self._tokens):
            return self._tokens[self._position]
        return None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise self._error("unexpected end")
        self._position += 1
        return token

    def _expect(self, kind: str, value: str | None = None) -> str:
        token_kind, token_value = self._next()
        if token_kind != kind or (value is not None and token_value != value):
            raise self._error(f"expected {value or kind}, found {token_value!r}")
        return token_value

    def _at_keyword(self, keyword: str) -> bool:
        token = self._peek()
        return token is not None and token == ("word", keyword)

    def parse(self) -> Predicate:
        predicate = self._expression()
        leftover = self._peek()
        if leftover is not None:
            raise self._error(f"unexpected {leftover[1]!r}")
        return predicate

    def _expression(self) -> Predicate:
        first = self._unary()
        operator: str | None = None
        operands = [first]
        while self._at_keyword("AND") or self._at_keyword("OR"):
            keyword = self._next()[1]
            if operator is not None and keyword != operator:
                raise self._error("AND and OR need parentheses to be combined")
            operator = keyword
            operands.append(self._unary())
        if operator is None:
            return first
        if operator == "AND":
            return lambda attributes: all(operand(attributes) for operand in operands)
        return lambda attributes: any(operand(attributes) for operand in operands)

    def _unary(self) -> Predicate:
        if self._at_keyword("NOT") or self._peek() == ("op", "-"):
            self._next()
            inner = self._unary()
            return lambda attributes: not inner(attributes)
        return self._primary()

    def _key(self) -> str:
        self._expect("word", "attributes")
        self._expect("op", ".")
        kind, value = self._next()
        if kind not in ("word", "string") or value == "":
            raise self._error(f"expected an attribute key, found {value!r}")
        return value

    def _primary(self) -> Predicate:
        token = self._peek()
        if token == ("op", "("):
            self._next()
            inner = self._expression()
            self._expect("op", ")")
            return inner
        if token == ("word", "hasPrefix"):
            self._next()
            self._expect("op", "(")
            key = self._key()
            self._expect("op", ",")
            prefix = self._expect("string")
            self._expect("op", ")")
            return lambda attributes: (
                attributes.get(key, None) is not None and attributes[key].startswith(prefix)
            )
        if token != ("word", "attributes"):
            raise self._error(f"expected a condition on attributes, found {token!r}")
        # "attributes:KEY" and "attributes.KEY op value" share the leading word.
        self._next()
        separator = self._expect("op")
        if separator == ":":
            kind, key = self._next()
            if kind not in ("word", "string") or key == "":
                raise self._error(f"expected an attribute key, found {key!r}")
            return lambda attributes: key in attributes
        if separator != ".":
            raise self._error(f"expected ':' or '.' after attributes, found {separator!r}")
        kind, key = self._next()
        if kind not in ("word", "string") or key == "":
            raise self._error(f"expected an attribute key, found {key!r}")
        operator = self._expect("op")
        value = self._expect("string")
        if operator == "=":
            return lambda attributes: attributes.get(key) == value
        if operator == "!=":
            return lambda attributes: attributes.get(key) != value
        raise self._error(f"expected = or != after attributes.{key}, found {operator!r}")


def compile_filter(text: str) -> Predicate | None:
    """Return the predicate for a filter, or None for the empty filter (everything matches)."""
    if text.strip() == "":
        return None
    if len(text.encode()) > MAX_FILTER_BYTES:
        raise InvalidArgument(f"Invalid filter: longer than {MAX_FILTER_BYTES} bytes")
    return _Parser(text).parse()
