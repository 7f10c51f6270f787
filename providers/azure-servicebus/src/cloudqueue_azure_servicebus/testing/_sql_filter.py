"""The SQL-92 subset of Service Bus filter and action expressions: parse once, evaluate per message.

Follows Microsoft's "Subscription Rule SQL Filter Syntax" and "SQL Action Syntax" pages:
predicates (``=``, ``<>``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``AND``, ``OR``, ``NOT``,
``[NOT] IN``, ``[NOT] LIKE ... [ESCAPE ...]``, ``IS [NOT] NULL``, ``EXISTS``), arithmetic
(``+ - * / %``, unary ``+ -``), string/number/boolean/NULL constants, ``@parameters``,
``sys.``/``user.``/unqualified properties, ``[delimited]`` and ``"quoted"`` names, and
``SET``/``REMOVE`` actions on user properties.

Unknown values (a missing user property, NULL) follow the documented three-valued logic:
comparisons, LIKE and IN with an unknown operand are unknown, AND/OR use the documented
truth tables, NOT unknown is unknown, and a message is selected only when the filter is true.

Approximations, kept deliberately small: values of types that C# would not compare (a string
with a number, a boolean ordered with ``<``) and division by zero evaluate to unknown instead of
raising a filter exception; string comparison and LIKE are ordinal (case-sensitive); the
functions ``newid()`` and ``property()`` are refused at parse time.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "SYSTEM_PROPERTIES",
    "Action",
    "MessageView",
    "Predicate",
    "SqlFilterError",
    "parse_action",
    "parse_filter",
]

# The service's quota for the text of a SQL filter or action.
MAX_EXPRESSION_LENGTH = 1024

# sys.<name> (lower case) -> attribute of MessageView.system. Names the service documents for
# BrokeredMessage/ServiceBusMessage that the broker can answer.
SYSTEM_PROPERTIES = (
    "messageid", "correlationid", "to", "replyto", "label", "subject", "sessionid",
    "replytosessionid", "contenttype", "partitionkey", "sequencenumber", "size",
    "deliverycount",
)

_KEYWORDS = frozenset({
    "and", "or", "not", "in", "like", "escape", "is", "null", "exists", "true", "false",
    "set", "remove",
})


class SqlFilterError(ValueError):
    """The expression is not valid; the message names the problem and where it is."""


class _Unknown:
    """SQL's unknown: a missing property or NULL, distinct from every value."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass
class MessageView:
    """What expressions read: system properties by lower-case name, user properties as sent."""

    system: dict[str, Any]
    user: dict[str, Any]

    def user_lookup(self, name: str) -> tuple[bool, Any]:
        """(exists, value); property names are case-insensitive."""
        lowered = name.lower()
        for key, value in self.user.items():
            if str(key).lower() == lowered:
                return True, value
        return False, None


# ----- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "quoted", "string", "number", "param", "op", "end"
    text: str
    value: Any
    pos: int


_OPERATORS = ("<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".", ";")
_NUMBER = re.compile(r"(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


def _tokenize(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif _is_letter(ch):
            end = pos + 1
            while end < len(text) and (_is_letter(text[end]) or text[end].isdigit() or text[end] == "_"):
                end += 1
            out.append(_Token("name", text[pos:end], text[pos:end], pos))
            pos = end
        elif ch == "@":
            end = pos + 1
            while end < len(text) and (_is_letter(text[end]) or text[end].isdigit() or text[end] == "_"):
                end += 1
            if end == pos + 1:
                raise SqlFilterError(f"a parameter name must follow '@' at position {pos}")
            out.append(_Token("param", text[pos:end], text[pos:end], pos))
            pos = end
        elif ch in "'[\"":
            closer = {"'": "'", "[": "]", '"': '"'}[ch]
            value, pos_after = _delimited(text, pos, closer)
            kind = {"'": "string", "[": "quoted", '"': "quoted"}[ch]
            out.append(_Token(kind, text[pos:pos_after], value, pos))
            pos = pos_after
        elif ch.isdigit() or (ch == "." and pos + 1 < len(text) and text[pos + 1].isdigit()):
            match = _NUMBER.match(text, pos)
            assert match is not None
            literal = match.group(0)
            number: int | float
            if "." in literal or match.group(2):
                number = float(literal)
            else:
                number = int(literal)
                if number > 2**63 - 1:
                    raise SqlFilterError(
                        f"the integer constant {literal} at position {pos} is out of the Int64 range"
                    )
            out.append(_Token("number", literal, number, pos))
            pos = match.end()
        else:
            for op in _OPERATORS:
                if text.startswith(op, pos):
                    out.append(_Token("op", op, op, pos))
                    pos += len(op)
                    break
            else:
                raise SqlFilterError(f"unexpected character {ch!r} at position {pos}")
    out.append(_Token("end", "", None, len(text)))
    return out


def _delimited(text: str, start: int, closer: str) -> tuple[str, int]:
    """Read a '...', [...] or "..." token; a doubled closer stands for itself."""
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        if text[pos] == closer:
            if pos + 1 < len(text) and text[pos + 1] == closer:
                chars.append(closer)
                pos += 2
                continue
            return "".join(chars), pos + 1
        chars.append(text[pos])
        pos += 1
    what = "string constant" if closer == "'" else "delimited name"
    raise SqlFilterError(f"unterminated {what} starting at position {start}")


# ----- values ------------------------------------------------------------------------------


def _normalize(value: Any) -> Any:
    """Map AMQP/proton values onto the types the SQL subset knows."""
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(left: Any, right: Any, op: str = "=") -> bool:
    if _numeric(left) and _numeric(right):
        return True
    if isinstance(left, bool) and isinstance(right, bool):
        return op in ("=", "<>", "!=")  # booleans are equal or not, never ordered
    return isinstance(left, str) and isinstance(right, str)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _arith(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_numeric(left) and _numeric(right)):
        return UNKNOWN
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return UNKNOWN
    both_int = isinstance(left, int) and isinstance(right, int)
    if op == "/":
        if both_int:  # C# integer division truncates toward zero
            quotient = abs(left) // abs(right)
            return quotient if (left >= 0) == (right >= 0) else -quotient
        return left / right
    # "%": C# remainder takes the sign of the dividend
    if both_int:
        rem = abs(left) % abs(right)
        return rem if left >= 0 else -rem
    return math.fmod(left, right)


# ----- expression nodes --------------------------------------------------------------------

Params = Mapping[str, Any]
Node = Callable[[MessageView, Params], Any]


@dataclass(frozen=True)
class _Property:
    scope: str  # "sys" or "user"
    name: str

    def value(self, msg: MessageView, _params: Params | None = None) -> Any:
        if self.scope == "sys":
            return _normalize(msg.system.get(self.name.lower()))
        exists, value = msg.user_lookup(self.name)
        return _normalize(value) if exists else UNKNOWN

    def exists(self, msg: MessageView) -> bool:
        if self.scope == "sys":
            return msg.system.get(self.name.lower()) is not None
        return msg.user_lookup(self.name)[0]


def _and(left: Any, right: Any) -> Any:
    if left is False or right is False:
        return False
    if left is True and right is True:
        return True
    return UNKNOWN


def _or(left: Any, right: Any) -> Any:
    if left is True or right is True:
        return True
    if left is False and right is False:
        return False
    return UNKNOWN


def _not(value: Any) -> Any:
    return (not value) if isinstance(value, bool) else UNKNOWN


def _like(value: Any, pattern: Any, escape: Any) -> Any:
    if value is UNKNOWN or pattern is UNKNOWN or escape is UNKNOWN:
        return UNKNOWN
    if not isinstance(value, str) or not isinstance(pattern, str):
        return UNKNOWN
    if escape is not None and (not isinstance(escape, str) or len(escape) != 1):
        return UNKNOWN
    regex: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if escape is not None and ch == escape:
            regex.append(re.escape(next(chars, "")))
        elif ch == "%":
            regex.append(".*")
        elif ch == "_":
            regex.append(".")
        else:
            regex.append(re.escape(ch))
    return re.fullmatch("".join(regex), value, re.DOTALL) is not None


# ----- parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise SqlFilterError(
                f"the {what} is {len(text)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
            )
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.parameters: set[str] = set()

    # token helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.index]

    def _advance(self) -> _Token:
        tok = self.tokens[self.index]
        self.index += 1
        return tok

    def _is_kw(self, *words: str) -> bool:
        return self.tok.kind == "name" and self.tok.text.lower() in words

    def _is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def _expect_kw(self, word: str) -> None:
        if not self._is_kw(word):
            self._fail(f"expected {word.upper()}")
        self._advance()

    def _expect_op(self, op: str) -> None:
        if not self._is_op(op):
            self._fail(f"expected '{op}'")
        self._advance()

    def _fail(self, problem: str) -> None:
        tok = self.tok
        found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        raise SqlFilterError(f"{problem} at position {tok.pos}, found {found}")

    # grammar: or_expr := and_expr (OR and_expr)*
    def parse_or(self) -> tuple[Node, bool]:
        node, boolean = self.parse_and()
        while self._is_kw("or"):
            self._advance()
            left = self._as_predicate(node, boolean)
            right = self._as_predicate(*self.parse_and())
            node, boolean = _combine(_or, left, right), True
        return node, boolean

    def parse_and(self) -> tuple[Node, bool]:
        node, boolean = self.parse_not()
        while self._is_kw("and"):
            self._advance()
            left = self._as_predicate(node, boolean)
            right = self._as_predicate(*self.parse_not())
            node, boolean = _combine(_and, left, right), True
        return node, boolean

    def parse_not(self) -> tuple[Node, bool]:
        if self._is_kw("not"):
            self._advance()
            inner = self._as_predicate(*self.parse_not())
            return (lambda m, p: _not(inner(m, p))), True
        if self._is_kw("exists"):
            self._advance()
            self._expect_op("(")
            prop = self.parse_property()
            self._expect_op(")")
            return (lambda m, p: prop.exists(m)), True
        return self.parse_predicate()

    def _as_predicate(self, node: Node, boolean: bool) -> Node:
        if not boolean:
            self._fail("expected a condition (comparison, IN, LIKE, IS NULL, EXISTS or TRUE/FALSE)")
        return node

    def parse_predicate(self) -> tuple[Node, bool]:
        start = self.tok
        left, boolean, prop = self.parse_additive()
        if self._is_op(*_COMPARE):
            op = self._advance().text
            right, _, _ = self.parse_additive()
            compare = _COMPARE[op]

            def comparison(m: MessageView, p: Params) -> Any:
                a, b = left(m, p), right(m, p)
                if a is UNKNOWN or b is UNKNOWN or not _comparable(a, b, op):
                    return UNKNOWN
                return compare(a, b)

            return comparison, True
        if self._is_kw("is"):
            self._advance()
            negate = self._is_kw("not")
            if negate:
                self._advance()
            self._expect_kw("null")
            if prop is None:
                raise SqlFilterError(f"IS NULL needs a property on its left (position {start.pos})")
            target = prop
            return (lambda m, p: (target.value(m) is UNKNOWN) != negate), True
        negate = False
        if self._is_kw("not") and self.tokens[self.index + 1].text.lower() in ("in", "like"):
            self._advance()
            negate = True
        if self._is_kw("in"):
            self._advance()
            return self._parse_in(left, negate), True
        if self._is_kw("like"):
            self._advance()
            return self._parse_like(left, negate), True
        return left, boolean

    def _parse_in(self, left: Node, negate: bool) -> Node:
        self._expect_op("(")
        items = [self.parse_additive()[0]]
        while self._is_op(","):
            self._advance()
            items.append(self.parse_additive()[0])
        self._expect_op(")")

        def member(m: MessageView, p: Params) -> Any:
            value = left(m, p)
            if value is UNKNOWN:
                return UNKNOWN
            found = any(
                (v := item(m, p)) is not UNKNOWN and _comparable(value, v) and value == v
                for item in items
            )
            return found != negate

        return member

    def _parse_like(self, left: Node, negate: bool) -> Node:
        pattern = self.parse_additive()[0]
        escape: Node | None = None
        if self._is_kw("escape"):
            self._advance()
            escape = self.parse_additive()[0]

        def like(m: MessageView, p: Params) -> Any:
            result = _like(left(m, p), pattern(m, p), escape(m, p) if escape else None)
            return _not(result) if negate else result

        return like

    # arithmetic: additive := multiplicative ((+|-) multiplicative)*
    def parse_additive(self) -> tuple[Node, bool, _Property | None]:
        node, boolean, prop = self.parse_multiplicative()
        while self._is_op("+", "-"):
            op = self._advance().text
            right = self.parse_multiplicative()[0]
            node, boolean, prop = _arith_node(op, node, right), False, None
        return node, boolean, prop

    def parse_multiplicative(self) -> tuple[Node, bool, _Property | None]:
        node, boolean, prop = self.parse_unary()
        while self._is_op("*", "/", "%"):
            op = self._advance().text
            right = self.parse_unary()[0]
            node, boolean, prop = _arith_node(op, node, right), False, None
        return node, boolean, prop

    def parse_unary(self) -> tuple[Node, bool, _Property | None]:
        if self._is_op("+", "-"):
            op = self._advance().text
            inner = self.parse_unary()[0]
            if op == "+":
                return (lambda m, p: inner(m, p) if _numeric(inner(m, p)) else UNKNOWN), False, None
            return (lambda m, p: -v if _numeric(v := inner(m, p)) else UNKNOWN), False, None
        return self.parse_primary()

    def parse_primary(self) -> tuple[Node, bool, _Property | None]:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self._advance()
            value = tok.value
            return (lambda m, p: value), False, None
        if tok.kind == "param":
            self._advance()
            name = tok.text
            self.parameters.add(name)
            return (lambda m, p: _normalize(p.get(name))), False, None
        if self._is_op("("):
            self._advance()
            node, boolean = self.parse_or()
            self._expect_op(")")
            return node, boolean, None
        if self._is_kw("true", "false"):
            self._advance()
            flag = tok.text.lower() == "true"
            return (lambda m, p: flag), True, None
        if self._is_kw("null"):
            self._advance()
            return (lambda m, p: UNKNOWN), False, None
        if tok.kind in ("name", "quoted"):
            if tok.kind == "name" and self.tokens[self.index + 1].text == "(":
                raise SqlFilterError(
                    f"function {tok.text}() at position {tok.pos} is not supported by the local broker"
                )
            prop = self.parse_property()
            return prop.value, False, prop
        self._fail("expected a constant, property, parameter or '('")
        raise AssertionError  # unreachable: _fail raises

    def parse_property(self) -> _Property:
        tok = self.tok
        if tok.kind not in ("name", "quoted"):
            self._fail("expected a property name")
        self._advance()
        scope = "user"
        name = tok.value
        start = tok.pos
        if tok.kind == "name" and tok.text.lower() in ("sys", "user") and self._is_op("."):
            self._advance()
            scope = tok.text.lower()
            inner = self.tok
            if inner.kind not in ("name", "quoted"):
                self._fail("expected a property name after the scope")
            self._advance()
            name, tok = inner.value, inner
        if tok.kind == "name" and tok.text.lower() in _KEYWORDS:
            raise SqlFilterError(
                f"{tok.text!r} at position {tok.pos} is a reserved keyword; write it as [{tok.text}] "
                "to use it as a property name"
            )
        if scope == "sys" and name.lower() not in SYSTEM_PROPERTIES:
            raise SqlFilterError(
                f"sys.{name} at position {start} is not a system property the broker knows "
                f"(known: {', '.join(SYSTEM_PROPERTIES)})"
            )
        return _Property(scope, name)

    def finish(self) -> None:
        if self.tok.kind != "end":
            self._fail("unexpected text after the end of the expression")


def _combine(logic: Callable[[Any, Any], Any], left: Node, right: Node) -> Node:
    return lambda m, p: logic(left(m, p), right(m, p))


def _arith_node(op: str, left: Node, right: Node) -> Node:
    def arith(m: MessageView, p: Params) -> Any:
        a, b = left(m, p), right(m, p)
        return UNKNOWN if a is UNKNOWN or b is UNKNOWN else _arith(op, a, b)

    return arith


# ----- public API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Predicate:
    """A parsed filter; ``matches`` is true only when the expression evaluates to TRUE."""

    text: str
    _node: Node
    parameters: frozenset[str]

    def matches(self, msg: MessageView, params: Params | None = None) -> bool:
        return self._node(msg, params or {}) is True


def _check_parameters(used: set[str], given: Params | None) -> None:
    given_names = {str(k) for k in (given or {})}
    missing = sorted(used - given_names)
    if missing:
        raise SqlFilterError(f"parameter {missing[0]} is used but not given a value in the rule's parameters")


def parse_filter(text: str, parameters: Params | None = None) -> Predicate:
    """Parse a SQL filter expression; raises SqlFilterError naming the problem."""
    parser = _Parser(text, "SQL filter expression")
    node, boolean = parser.parse_or()
    parser.finish()
    if not boolean:
        raise SqlFilterError("the SQL filter expression is a value, not a condition")
    _check_parameters(parser.parameters, parameters)
    return Predicate(text, node, frozenset(parser.parameters))


@dataclass(frozen=True)
class Action:
    """A parsed rule action: SET/REMOVE statements on user properties, applied in order."""

    text: str
    statements: tuple[tuple[str, str, Node | None], ...]  # (verb, property name, expression)

    def apply(self, msg: MessageView, params: Params | None = None) -> dict[str, Any]:
        """Return the message's user properties after the action (``msg`` is not changed)."""
        props = dict(msg.user)
        for verb, name, expr in self.statements:
            existing = [k for k in props if str(k).lower() == name.lower()]
            if verb == "remove":
                for key in existing:
                    del props[key]
            elif expr is not None:
                # Evaluated against the properties as earlier statements left them.
                value = expr(MessageView(msg.system, props), params or {})
                props[existing[0] if existing else name] = None if value is UNKNOWN else value
        return props


def parse_action(text: str, parameters: Params | None = None) -> Action:
    """Parse a SQL rule action (``SET p = expr``, ``REMOVE p``, separated by ``,`` or ``;``)."""
    parser = _Parser(text, "SQL rule action")
    statements: list[tuple[str, str, Node | None]] = []
    while parser.tok.kind != "end":
        if not parser._is_kw("set", "remove"):
            parser._fail("expected SET or REMOVE")
        verb = parser._advance().text.lower()
        start = parser.tok
        prop = parser.parse_property()
        if prop.scope == "sys":
            raise SqlFilterError(
                f"rule actions that change system properties (sys.{prop.name} at position "
                f"{start.pos}) are not supported by the local broker"
            )
        expr: Node | None = None
        if verb == "set":
            parser._expect_op("=")
            expr = parser.parse_additive()[0]
        statements.append((verb, prop.name, expr))
        while parser._is_op(";", ","):
            parser._advance()
    if not statements:
        raise SqlFilterError("the SQL rule action has no SET or REMOVE statement")
    _check_parameters(parser.parameters, parameters)
    return Action(text, tuple(statements))
