"""``cloudqueue declare URL``: create a destination, or bring it to these settings."""

from __future__ import annotations

import argparse

from .. import dead_letter_url, declare
from ..errors import InvalidArgument
from ..filters import Filter
from ._common import add_url_option, display_url, positive_float, positive_int, url_from

NAME = "declare"
HELP = "create a queue, topic or subscription (or update its settings)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", nargs="?", metavar="URL", help="destination URL")
    add_url_option(parser)
    parser.add_argument(
        "--dead-letter-after", type=positive_int, metavar="N",
        help="move a message to the dead-letter destination after N deliveries",
    )
    parser.add_argument("--ordered", action="store_true", help="deliver each ordering key in order")
    parser.add_argument(
        "--deduplicated", action="store_true", help="drop repeats of a deduplication id"
    )
    parser.add_argument(
        "--lease", type=positive_float, default=30.0, metavar="S",
        help="seconds a received message stays hidden from other consumers (default 30)",
    )
    parser.add_argument(
        "--filter", type=filter_argument, metavar="JSON",
        help='deliver to the subscription only matching messages, e.g. '
        '\'{"attribute": "type", "equals": "order"}\' (see docs/filters.md)',
    )


def filter_argument(text: str) -> Filter:
    try:
        return Filter.from_json(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def execute(args: argparse.Namespace) -> int:
    url = url_from(args)
    declare(
        url,
        dead_letter_after=args.dead_letter_after,
        ordered=args.ordered,
        deduplicated=args.deduplicated,
        lease=args.lease,
        filter=args.filter,
    )
    print(f"declared {display_url(url)}")
    if args.filter is not None:
        print(f"filter: {args.filter}")
    if args.dead_letter_after is not None:
        print(f"dead letters: {display_url(dead_letter_url(url))}")
    return 0
