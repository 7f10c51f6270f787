"""Rows and JSON for messages read by ``cloudqueue peek`` and ``cloudqueue dlq``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ._views import UNKNOWN, age_since, body_json, count, format_age, preview

if TYPE_CHECKING:
    from ..ops import PeekedMessage

__all__ = ["attributes_text", "dead_letter_json", "dead_letter_row", "peeked_json", "peeked_row"]

PEEK_HEADERS = ("ID", "ATTEMPT", "AGE", "ORDERING KEY", "ATTRIBUTES", "BODY")
DEAD_LETTER_HEADERS = ("ID", "REASON", "ATTEMPTS", "AGE", "ATTRIBUTES", "BODY")
#: The ATTEMPT(S) and AGE columns of both tables, right-aligned.
NUMERIC = frozenset({1, 2})
DEAD_LETTER_NUMERIC = frozenset({2, 3})


def attributes_text(attributes: dict[str, str]) -> str:
    return " ".join(f"{name}={preview(value.encode(), 30)}" for name, value in sorted(attributes.items()))


def peeked_row(message: PeekedMessage, now: datetime) -> list[str]:
    return [
        message.id,
        count(message.delivery_attempt),
        format_age(age_since(message.enqueued_at, now)),
        message.ordering_key or UNKNOWN,
        attributes_text(message.attributes),
        preview(message.body),
    ]


def dead_letter_row(message: PeekedMessage, now: datetime) -> list[str]:
    facts = message.dead_letter
    return [
        message.id,
        (facts.reason if facts else None) or UNKNOWN,
        count(facts.delivery_count if facts else None),
        format_age(age_since(message.enqueued_at, now)),
        attributes_text(message.attributes),
        preview(message.body),
    ]


def peeked_json(message: PeekedMessage, now: datetime) -> dict[str, object]:
    return {
        "id": message.id,
        **body_json(message.body),
        "attributes": message.attributes,
        "ordering_key": message.ordering_key,
        "delivery_attempt": message.delivery_attempt,
        "enqueued_at": message.enqueued_at.isoformat() if message.enqueued_at else None,
        "age": age_since(message.enqueued_at, now),
    }


def dead_letter_json(message: PeekedMessage, now: datetime) -> dict[str, object]:
    facts = message.dead_letter
    return {
        **peeked_json(message, now),
        "reason": facts.reason if facts else None,
        "delivery_count": facts.delivery_count if facts else None,
        "original_id": facts.original_id if facts else None,
        "source": facts.source if facts else None,
    }
