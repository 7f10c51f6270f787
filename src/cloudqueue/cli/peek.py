"""``cloudqueue peek URL -n N``: show waiting messages without settling them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ._common import label_url, positive_int
from ._peeked import NUMERIC, PEEK_HEADERS, peeked_json, peeked_row
from ._views import table

NAME = "peek"
HELP = "show up to N waiting messages without settling them"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        f"{HELP}. Where the provider cannot peek, they are received, held and released: "
        "each one's delivery count rises by one, and ordered destinations are refused."
    )
    parser.add_argument("url", metavar="URL", help="queue or subscription URL")
    parser.add_argument(
        "-n", type=positive_int, default=10, metavar="N", help="at most N messages (default 10, at most 1000)"
    )
    parser.add_argument(
        "--json", action="store_true",
        help="one JSON object per line; the body as text, or base64 with \"base64\": true",
    )


def execute(args: argparse.Namespace) -> int:
    from ..ops import peek  # imported when used: `cloudqueue --help` stays fast

    messages = peek(args.url, args.n)
    now = datetime.now(UTC)
    if args.json:
        for message in messages:
            print(json.dumps(peeked_json(message, now), ensure_ascii=False))
    elif messages:
        print(table(PEEK_HEADERS, [peeked_row(message, now) for message in messages], right=NUMERIC))
    else:
        print(f"no messages waiting in {label_url(args.url)}", file=sys.stderr)
    return 0
