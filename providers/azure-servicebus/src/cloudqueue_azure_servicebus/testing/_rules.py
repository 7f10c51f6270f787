"""Subscription rules: filters and actions, and how a topic routes a message through them.

As the service documents ("Topic filters and actions"): a subscription takes a copy of a message
when ANY of its rules matches; all matching rules without an action together yield one copy, and
every matching rule with an action yields its own copy, annotated by the action and carrying the
user property ``RuleName``. A subscription without rules receives nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._message import PARTITION_KEY, StoredMessage
from ._sql_filter import Action, MessageView, Predicate, SqlFilterError, parse_action, parse_filter

__all__ = [
    "CORRELATION_FIELDS",
    "DEFAULT_RULE_NAME",
    "MAX_RULES_PER_SUBSCRIPTION",
    "Rule",
    "RuleError",
    "RuleFilter",
    "default_rule",
    "message_view",
]

DEFAULT_RULE_NAME = "$Default"
# The service's quota: "Number of filters/rules per topic subscription: 2,000".
MAX_RULES_PER_SUBSCRIPTION = 2000
RULE_NAME_PROPERTY = "RuleName"

# Correlation filter element -> the system property it matches (MessageView.system key).
CORRELATION_FIELDS = {
    "CorrelationId": "correlationid",
    "MessageId": "messageid",
    "To": "to",
    "ReplyTo": "replyto",
    "Label": "label",
    "SessionId": "sessionid",
    "ReplyToSessionId": "replytosessionid",
    "ContentType": "contenttype",
}

# AMQP properties section: list index -> system property name.
_AMQP_PROPERTIES = {0: "messageid", 2: "to", 3: "label", 4: "replyto", 5: "correlationid",
                    6: "contenttype", 10: "sessionid", 12: "replytosessionid"}


class RuleError(ValueError):
    """A rule the broker cannot accept; the message names the problem (answered as HTTP 400)."""


@dataclass
class RuleFilter:
    """One of TrueFilter, FalseFilter, SqlFilter or CorrelationFilter, as the ATOM body names it."""

    kind: str
    sql_expression: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    correlation: dict[str, str] = field(default_factory=dict)  # CORRELATION_FIELDS keys
    properties: dict[str, Any] = field(default_factory=dict)
    predicate: Predicate | None = None

    def matches(self, msg: MessageView) -> bool:
        if self.kind == "CorrelationFilter":
            return self._correlates(msg)
        assert self.predicate is not None
        return self.predicate.matches(msg, self.parameters)

    def _correlates(self, msg: MessageView) -> bool:
        # Every given field must be equal; string comparison is case-sensitive.
        for element, sys_name in CORRELATION_FIELDS.items():
            wanted = self.correlation.get(element)
            if wanted is not None and _as_text(msg.system.get(sys_name)) != wanted:
                return False
        for name, wanted in self.properties.items():
            exists, value = msg.user_lookup(name)
            if not exists or not _same_value(value, wanted):
                return False
        return True


@dataclass
class Rule:
    name: str
    filter: RuleFilter
    action: Action | None = None
    action_parameters: dict[str, Any] = field(default_factory=dict)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def annotate(self, msg: MessageView) -> dict[str, Any]:
        """User properties of this rule's copy: the action applied, plus RuleName."""
        assert self.action is not None
        props = self.action.apply(msg, self.action_parameters)
        props[RULE_NAME_PROPERTY] = self.name
        return props


def default_rule() -> Rule:
    return Rule(DEFAULT_RULE_NAME, build_filter("TrueFilter", sql_expression="1=1"))


def build_filter(
    kind: str,
    *,
    sql_expression: str | None = None,
    parameters: dict[str, Any] | None = None,
    correlation: dict[str, str] | None = None,
    properties: dict[str, Any] | None = None,
) -> RuleFilter:
    """Validate and compile a filter; raises RuleError naming the problem."""
    params = dict(parameters or {})
    if kind == "TrueFilter":
        sql_expression = "1=1"
    elif kind == "FalseFilter":
        sql_expression = "1=0"
    elif kind == "CorrelationFilter":
        if not (correlation or properties):
            raise RuleError("A correlation filter needs at least one system or user property to match.")
        return RuleFilter(kind, correlation=dict(correlation or {}), properties=dict(properties or {}))
    elif kind != "SqlFilter":
        raise RuleError(
            f"Filter type {kind!r} is not supported; use SqlFilter, CorrelationFilter, TrueFilter or "
            "FalseFilter."
        )
    if not sql_expression:
        raise RuleError("The SQL filter expression is empty.")
    try:
        predicate = parse_filter(sql_expression, params)
    except SqlFilterError as exc:
        raise RuleError(f"The SQL filter expression {sql_expression!r} is invalid: {exc}.") from None
    return RuleFilter(kind, sql_expression=sql_expression, parameters=params, predicate=predicate)


def build_action(sql_expression: str | None, parameters: dict[str, Any] | None) -> Action | None:
    if sql_expression is None or not sql_expression.strip():
        return None
    try:
        return parse_action(sql_expression, parameters)
    except SqlFilterError as exc:
        raise RuleError(f"The SQL rule action {sql_expression!r} is invalid: {exc}.") from None


def message_view(msg: StoredMessage) -> MessageView:
    """The system and user properties rules read from a stored message."""
    amqp = msg.sections.properties or []
    system: dict[str, Any] = {
        name: (amqp[index] if index < len(amqp) else None) for index, name in _AMQP_PROPERTIES.items()
    }
    system["subject"] = system["label"]
    system["partitionkey"] = msg.sections.message_annotations.get(PARTITION_KEY)
    system["sequencenumber"] = msg.seq
    system["size"] = msg.size
    system["deliverycount"] = msg.attempts
    user = {str(k): v for k, v in (msg.sections.application_properties or {}).items()}
    return MessageView(system, user)


def route(rules: dict[str, Rule], msg: StoredMessage) -> list[dict[str, Any] | None]:
    """One entry per copy the subscription takes: None for a plain copy, else its new properties."""
    if not rules:
        return []
    view = message_view(msg)
    plain = False
    copies: list[dict[str, Any] | None] = []
    for rule in rules.values():
        if not rule.filter.matches(view):
            continue
        if rule.action is None:
            plain = True
        else:
            copies.append(rule.annotate(view))
    return ([None] if plain else []) + copies


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _same_value(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return isinstance(wanted, bool) and isinstance(actual, bool) and actual == wanted
    if isinstance(wanted, (int, float)) and isinstance(actual, (int, float)):
        return float(actual) == float(wanted)
    if isinstance(wanted, str):
        return isinstance(actual, str) and str(actual) == wanted
    return bool(actual == wanted)
