"""``cloudqueue stats URL...``: how many messages each queue or subscription holds."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from ..driver import QueueStats
from ..errors import QueueError
from ._common import describe_error, label_url
from ._views import count, format_age, table

NAME = "stats"
HELP = "show available, in-flight, delayed and dead-lettered counts of queues or subscriptions"

HEADERS = ("URL", "AVAILABLE", "IN FLIGHT", "DELAYED", "DEAD LETTERS", "OLDEST", "COUNTS")
#: The numeric columns, right-aligned.
NUMERIC = frozenset({1, 2, 3, 4, 5})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="+", metavar="URL", help="queue or subscription URL (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per URL and line")


def execute(args: argparse.Namespace) -> int:
    from ..ops import stats  # imported when used: `cloudqueue --help` stays fast

    if len(args.urls) == 1:  # one URL: its error is the command's error, as elsewhere
        results: list[QueueStats | QueueError] = [stats(args.urls[0])]
    else:
        results = [_stats_or_error(stats, url) for url in args.urls]
    labels = [label_url(url) for url in args.urls]
    if args.json:
        for label, result in zip(labels, results, strict=True):
            print(json.dumps({"url": label, **to_json(result)}))
    else:
        print(table(HEADERS, [row(label, result) for label, result in zip(labels, results, strict=True)],
                    right=NUMERIC))
    return 1 if any(isinstance(result, QueueError) for result in results) else 0


def _stats_or_error(stats: Callable[[str], QueueStats], url: str) -> QueueStats | QueueError:
    try:
        return stats(url)
    except QueueError as error:  # one URL's problem must not hide the others' numbers
        return error


def row(label: str, result: QueueStats | QueueError) -> list[str]:
    if isinstance(result, QueueError):
        return [label, describe_error(result), "", "", "", "", ""]
    return [
        label,
        count(result.available),
        count(result.in_flight),
        count(result.delayed),
        count(result.dead_letters),
        format_age(result.oldest_age),
        "exact" if result.exact else "approx",
    ]


def to_json(result: QueueStats | QueueError) -> dict[str, object]:
    if isinstance(result, QueueError):
        return {"error": describe_error(result)}
    return {
        "available": result.available,
        "in_flight": result.in_flight,
        "delayed": result.delayed,
        "dead_letters": result.dead_letters,
        "oldest_age": result.oldest_age,
        "exact": result.exact,
        "total_sent": result.total_sent,
        "total_received": result.total_received,
    }


