"""Unit tests of the broker's SQL filter/action parser and evaluator (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from cloudqueue_azure_servicebus.testing._sql_filter import (
    MAX_EXPRESSION_LENGTH,
    MessageView,
    SqlFilterError,
    parse_action,
    parse_filter,
)


def view(**user: Any) -> MessageView:
    system = {"label": "orders", "subject": "orders", "messageid": "m-1", "correlationid": None,
              "to": "store5", "contenttype": "application/json", "sequencenumber": 7}
    return MessageView(system, user)


def match(expr: str, msg: MessageView | None = None, params: dict[str, Any] | None = None) -> bool:
    return parse_filter(expr, params).matches(msg or view(), params)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1=1", True),
        ("1>1", False),
        ("TRUE", True),
        ("color = 'blue'", True),
        ("color = 'Blue'", False),  # ordinal, case-sensitive comparison
        ("COLOR = 'blue'", True),  # property names are case-insensitive
        ("user.color = 'blue' AND quantity = 10", True),
        ("color <> 'blue' OR quantity >= 10", True),
        ("color != 'blue'", False),
        ("quantity < 10.5 AND quantity > 9", True),
        ("quantity <= 10 AND NOT quantity < 10", True),
        ("price * 2 = 5.0", True),
        ("quantity / 3 = 3", True),  # Int64 division truncates
        ("-quantity % 3 = -1", True),  # remainder keeps the dividend's sign
        ("quantity + 1 = 11 AND (color = 'red' OR color = 'blue')", True),
        ("color + '-x' = 'blue-x'", True),
        ("color IN ('red', 'blue')", True),
        ("color NOT IN ('red', 'blue')", False),
        ("quantity IN (1, 10.0)", True),
        ("color LIKE 'bl%'", True),
        ("color LIKE 'b_ue'", True),
        ("color LIKE 'b_'", False),
        ("color NOT LIKE '%u%'", False),
        ("code LIKE 'ABC!%' ESCAPE '!'", True),
        ("code LIKE 'ABC!%x' ESCAPE '!'", False),
        ("EXISTS(color)", True),
        ("EXISTS(missing)", False),
        ("NOT EXISTS(missing)", True),
        ("missing IS NULL", True),
        ("nothing IS NULL", True),  # present with a null value
        ("color IS NOT NULL", True),
        ("EXISTS(nothing)", True),
        ("[my-prop] = 'x'", True),
        ("user.[my-prop] = 'x'", True),
        ('"my-prop" = \'x\'', True),
        ("[odd]]name] = 1", True),
        ("flag = TRUE", True),
        ("flag = FALSE", False),
        ("sys.Label = 'orders'", True),
        ("sys.label LIKE '%der%'", True),
        ("sys.To IN ('Store5', 'store5')", True),
        ("sys.MessageId = 'm-1' AND sys.ContentType = 'application/json'", True),
        ("sys.CorrelationId IS NULL", True),
        ("sys.SequenceNumber > 5", True),
        ("quote = 'it''s'", True),
        ("big = 1.5E3", True),
    ],
)
def test_filter_evaluation(expr: str, expected: bool) -> None:
    msg = view(color="blue", quantity=10, price=2.5, code="ABC%", nothing=None, flag=True,
               quote="it's", big=1500, **{"my-prop": "x", "odd]name": 1})
    assert match(expr, msg) is expected


@pytest.mark.parametrize(
    "expr",
    [
        "missing = 1",
        "missing <> 1",
        "NOT (missing = 1)",  # NOT unknown is unknown: still not selected
        "missing IN (1, 2)",
        "missing NOT IN (1, 2)",
        "missing LIKE '%'",
        "missing NOT LIKE 'x'",
        "missing + 1 = 2",
        "-missing = 0",
        "missing = NULL",
        "color = 5",  # a string never compares with a number
        "flag > FALSE",
    ],
)
def test_unknown_is_never_selected(expr: str) -> None:
    assert match(expr, view(color="blue", flag=True)) is False


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # The documented truth tables with U = unknown (missing = 1).
        ("missing = 1 AND 1 = 0", False),
        ("missing = 1 AND 1 = 1", False),  # U: not selected
        ("NOT (missing = 1 AND 1 = 0)", True),  # F negated
        ("NOT (missing = 1 AND 1 = 1)", False),  # U negated stays U
        ("missing = 1 OR 1 = 1", True),
        ("missing = 1 OR 1 = 0", False),  # U
        ("NOT (missing = 1 OR 1 = 0)", False),  # U negated stays U
    ],
)
def test_three_valued_logic(expr: str, expected: bool) -> None:
    assert match(expr) is expected


def test_parameters_are_substituted() -> None:
    assert match("color = @c AND quantity > @n", view(color="red", quantity=3), {"@c": "red", "@n": 2})
    assert not match("color = @c", view(color="red"), {"@c": "blue"})


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("color =", "expected a constant"),
        ("color = 'blue", "unterminated string constant"),
        ("[color = 1", "unterminated delimited name"),
        ("color", "is a value, not a condition"),
        ("(color)", "is a value, not a condition"),
        ("color = 1 extra", "unexpected text"),
        ("color IN 1", "expected '('"),
        ("color IN (1, 2", "expected ')'"),
        ("1 + 1 IS NULL", "IS NULL needs a property"),
        ("sys.Colour = 'x'", "sys.Colour at position 0 is not a system property"),
        ("and = 1", "reserved keyword"),
        ("newid() = 'x'", "function newid()"),
        ("color = @missing", "parameter @missing is used but not given"),
        ("color = 1 AND 2", "expected a condition"),
        ("color ~ 1", "unexpected character '~'"),
        ("n = 99999999999999999999", "out of the Int64 range"),
    ],
)
def test_parse_errors_name_the_problem(expr: str, problem: str) -> None:
    with pytest.raises(SqlFilterError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(expr)


def test_expression_length_limit() -> None:
    long = "a = '" + "x" * MAX_EXPRESSION_LENGTH + "'"
    with pytest.raises(SqlFilterError, match=f"the limit is {MAX_EXPRESSION_LENGTH}"):
        parse_filter(long)


def test_action_set_and_remove_user_properties() -> None:
    action = parse_action("SET quantity = quantity / 2; SET [new-prop] = 'y' + @s, REMOVE Color", {"@s": "!"})
    msg = view(color="red", quantity=10, keep=True)
    assert action.apply(msg, {"@s": "!"}) == {"quantity": 5, "new-prop": "y!", "keep": True}
    assert msg.user == {"color": "red", "quantity": 10, "keep": True}  # the original is untouched


def test_action_set_from_missing_property_stores_null() -> None:
    assert parse_action("SET copy = missing").apply(view()) == {"copy": None}


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("SET sys.Label = 'x'", "change system properties"),
        ("UPDATE x = 1", "expected SET or REMOVE"),
        ("SET x 1", "expected '='"),
        ("", "no SET or REMOVE"),
    ],
)
def test_action_errors(expr: str, problem: str) -> None:
    with pytest.raises(SqlFilterError, match=problem):
        parse_action(expr)
