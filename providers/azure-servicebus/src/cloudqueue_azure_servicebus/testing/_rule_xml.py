"""ATOM ``RuleDescription`` documents: what ``create_rule``/``update_rule`` send and ``get_rule`` parses.

Element names follow ``azure/servicebus/management/_generated/models`` (``RuleDescription``,
``Filter``/``Action`` with an ``xsi:type``) and the SDK's own key-value handling
(``management/_utils.py``: ``KeyValueOfstringanyType`` with ``Key`` and a typed ``Value``).
The response always carries an ``Action`` element: the SDK looks it up unconditionally.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from ._atom import SB_NS, format_duration, parse_duration
from ._rules import CORRELATION_FIELDS, Rule, RuleError, build_action, build_filter

__all__ = ["find_rule_element", "parse_rule", "rule_description"]

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
_TYPE = f"{{{XSI_NS}}}type"


def _tag(name: str) -> str:
    return f"{{{SB_NS}}}{name}"


def _local(tag: str) -> str:
    return tag.split("}", 1)[-1]


def find_rule_element(root: ElementTree.Element, names: tuple[str, ...]) -> ElementTree.Element | None:
    for element in root.iter():
        if element.tag.startswith("{" + SB_NS) and _local(element.tag) in names:
            return element
    return None


def parse_rule(element: ElementTree.Element, name: str) -> Rule:
    """Build a Rule from a RuleDescription element; raises RuleError naming the problem."""
    filter_el = element.find(_tag("Filter"))
    if filter_el is None:
        rule_filter = build_filter("TrueFilter")
    else:
        filter_kind = _xsi_type(filter_el) or "SqlFilter"
        correlation = {
            elem: text for elem in CORRELATION_FIELDS if (text := _text(filter_el, elem)) is not None
        }
        rule_filter = build_filter(
            filter_kind,
            sql_expression=_text(filter_el, "SqlExpression"),
            parameters=_key_values(filter_el.find(_tag("Parameters"))),
            correlation=correlation,
            properties=_key_values(filter_el.find(_tag("Properties"))),
        )
    action_el = element.find(_tag("Action"))
    action = None
    action_params: dict[str, Any] = {}
    if action_el is not None:
        kind = _xsi_type(action_el)
        if kind == "SqlRuleAction":
            action_params = _key_values(action_el.find(_tag("Parameters")))
            action = build_action(_text(action_el, "SqlExpression"), action_params)
        elif kind not in (None, "EmptyRuleAction"):
            raise RuleError(f"Rule action type {kind!r} is not supported; use SqlRuleAction.")
    return Rule(name, rule_filter, action, action_params)


def _xsi_type(element: ElementTree.Element) -> str | None:
    value = element.get(_TYPE)
    return value.split(":")[-1] if value else None


def _text(parent: ElementTree.Element, name: str) -> str | None:
    child = parent.find(_tag(name))
    return child.text if child is not None and child.text is not None else None


def _key_values(parent: ElementTree.Element | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if parent is None:
        return out
    for item in parent:
        key = item.find(_tag("Key"))
        value = item.find(_tag("Value"))
        if key is None or key.text is None or value is None:
            raise RuleError("A rule property or parameter has no Key or Value.")
        out[key.text] = _typed_value(value)
    return out


def _typed_value(value: ElementTree.Element) -> Any:
    kind = _xsi_type(value) or "string"
    text = value.text or ""
    try:
        if kind in ("int", "long"):
            return int(text)
        if kind == "double":
            return float(text)
        if kind == "boolean":
            return text.strip().lower() == "true"
        if kind == "dateTime":
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        if kind == "duration":
            return timedelta(seconds=parse_duration(text))
    except ValueError:
        raise RuleError(f"The value {text!r} is not a valid {kind}.") from None
    if kind != "string":
        raise RuleError(f"Value type {kind!r} is not supported; use string, int, long, double or boolean.")
    return text


# ----- rendering ---------------------------------------------------------------------------


def _render_value(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, int):
        return ("int" if -(2**31) <= value < 2**31 else "long"), str(value)
    if isinstance(value, float):
        return "double", repr(value)
    if isinstance(value, datetime):
        return "dateTime", value.isoformat()
    if isinstance(value, timedelta):
        return "duration", format_duration(value.total_seconds())
    return "string", str(value)


def _key_values_xml(tag: str, values: dict[str, Any]) -> str:
    items = []
    for key, value in values.items():
        kind, text = _render_value(value)
        items.append(
            f"<KeyValueOfstringanyType><Key>{escape(key)}</Key>"
            f'<Value xmlns:d6p1="{XSD_NS}" i:type="d6p1:{kind}">{escape(text)}</Value>'
            "</KeyValueOfstringanyType>"
        )
    return f"<{tag}>{''.join(items)}</{tag}>"


def _sql_xml(expression: str, parameters: dict[str, Any]) -> str:
    return (
        f"<SqlExpression>{escape(expression)}</SqlExpression><CompatibilityLevel>20</CompatibilityLevel>"
        + (_key_values_xml("Parameters", parameters) if parameters else "")
    )


def _filter_xml(rule: Rule) -> str:
    flt = rule.filter
    if flt.kind == "CorrelationFilter":
        fields = "".join(
            f"<{elem}>{escape(flt.correlation[elem])}</{elem}>"
            for elem in CORRELATION_FIELDS if elem in flt.correlation
        )
        return (
            f'<Filter i:type="CorrelationFilter">{fields}'
            + _key_values_xml("Properties", flt.properties) + "</Filter>"
        )
    return f'<Filter i:type="{flt.kind}">' + _sql_xml(flt.sql_expression or "", flt.parameters) + "</Filter>"


def _action_xml(rule: Rule) -> str:
    if rule.action is None:
        return '<Action i:type="EmptyRuleAction"/>'
    return (
        '<Action i:type="SqlRuleAction">' + _sql_xml(rule.action.text, rule.action_parameters)
        + "<RequiresPreprocessing>false</RequiresPreprocessing></Action>"
    )


def rule_description(rule: Rule) -> str:
    created = rule.created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return (
        f'<RuleDescription xmlns="{SB_NS}" xmlns:i="{XSI_NS}">'
        + _filter_xml(rule) + _action_xml(rule)
        + f"<CreatedAt>{created}</CreatedAt><Name>{escape(rule.name)}</Name></RuleDescription>"
    )
