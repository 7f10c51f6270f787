"""Rows for the templates: stats and dead letters as the text the cells show (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..cli._views import UNKNOWN, age_since, count, format_age
from ..ops import PeekedMessage
from . import _bodies
from ._stats import Reading

__all__ = ["STAT_NAMES", "dead_letter_detail", "dead_letter_row", "reading_json", "stat_cells"]

#: The ``data-stat`` cells of a destination row, in column order.
STAT_NAMES = ("available", "in_flight", "delayed", "dead_letters", "oldest_age")


def stat_cells(reading: Reading) -> dict[str, str]:
    stats = reading.stats
    if stats is None:
        return dict.fromkeys(STAT_NAMES, UNKNOWN)
    return {
        "available": count(stats.available),
        "in_flight": count(stats.in_flight),
        "delayed": count(stats.delayed),
        "dead_letters": count(stats.dead_letters),
        "oldest_age": format_age(stats.oldest_age),
    }


def reading_json(reading: Reading) -> dict[str, Any]:
    destination, stats = reading.destination, reading.stats
    return {
        "index": destination.index,
        "provider": destination.provider,
        "name": destination.name,
        "label": destination.label,
        "stats": None if stats is None else {
            "available": stats.available,
            "in_flight": stats.in_flight,
            "delayed": stats.delayed,
            "dead_letters": stats.dead_letters,
            "oldest_age": stats.oldest_age,
            "exact": stats.exact,
        },
        "cells": stat_cells(reading),
        "error": reading.error,
    }


def dead_letter_row(message: PeekedMessage, now: datetime) -> dict[str, Any]:
    facts = message.dead_letter
    return {
        "id": message.id,
        "reason": (facts.reason if facts else None) or UNKNOWN,
        "attempts": count(facts.delivery_count if facts else None),
        "age": format_age(age_since(message.enqueued_at, now)),
        "attributes": sorted(message.attributes.items()),
        "body": _bodies.preview(message.body),
    }


def dead_letter_detail(message: PeekedMessage, now: datetime) -> dict[str, Any]:
    facts = message.dead_letter
    return {
        **dead_letter_row(message, now),
        "body": _bodies.full(message.body),
        "size": len(message.body),
        "enqueued_at": message.enqueued_at.isoformat() if message.enqueued_at else UNKNOWN,
        "original_id": (facts.original_id if facts else None) or UNKNOWN,
        "ordering_key": message.ordering_key or UNKNOWN,
    }
