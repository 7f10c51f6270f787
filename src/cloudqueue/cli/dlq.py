"""``cloudqueue dlq URL``: the dead letters of a queue or subscription, and why they died."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ._common import label_url, positive_int
from ._peeked import DEAD_LETTER_HEADERS, DEAD_LETTER_NUMERIC, dead_letter_json, dead_letter_row
from ._views import table

NAME = "dlq"
HELP = "show the dead letters of a queue or subscription: reason, attempts, age and body"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", metavar="URL", help="the queue or subscription whose dead letters to show (not the DLQ itself)"
    )
    parser.add_argument(
        "-n", type=positive_int, default=10, metavar="N",
        help="at most N dead letters (default 10, at most 1000)",
    )
    parser.add_argument(
        "--json", action="store_true",
        help="one JSON object per line; the body as text, or base64 with \"base64\": true",
    )


def execute(args: argparse.Namespace) -> int:
    from ..ops import dead_letters  # imported when used: `cloudqueue --help` stays fast

    messages = dead_letters(args.url, args.n)
    now = datetime.now(UTC)
    if args.json:
        for message in messages:
            print(json.dumps(dead_letter_json(message, now), ensure_ascii=False))
    elif messages:
        rows = [dead_letter_row(message, now) for message in messages]
        print(table(DEAD_LETTER_HEADERS, rows, right=DEAD_LETTER_NUMERIC))
    else:
        print(f"no dead letters for {label_url(args.url)}", file=sys.stderr)
    return 0
