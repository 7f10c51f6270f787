"""``cloudqueue send``: one message, or ``--count N`` copies, from an argument, a file or stdin."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .. import Message, open_producer
from ._common import (
    CliError,
    add_url_option,
    attribute,
    display_url,
    non_negative_float,
    positive_int,
    url_from,
)
from ._progress import ProgressBar

NAME = "send"
HELP = "send a message: BODY, --file F, or standard input"

#: Copies per send_batch call with --count; the portable layer splits further by the provider's limits.
CHUNK = 500


def configure(parser: argparse.ArgumentParser) -> None:
    add_url_option(parser)
    parser.add_argument("body", nargs="?", metavar="BODY", help="message body (text)")
    parser.add_argument("--file", metavar="F", help="read the body from file F ('-' for stdin)")
    parser.add_argument(
        "--attribute", "-a", type=attribute, action="append", default=[], metavar="NAME=VALUE",
        help="message attribute (repeatable)",
    )
    parser.add_argument("--ordering-key", metavar="KEY")
    parser.add_argument("--deduplication-id", metavar="ID")
    parser.add_argument("--delay", type=non_negative_float, metavar="S", help="deliver after S seconds")
    parser.add_argument(
        "--count", type=positive_int, default=1, metavar="N",
        help="send N copies, with a progress bar on stderr",
    )


def execute(args: argparse.Namespace) -> int:
    body = _read_body(args)
    attributes = dict(args.attribute)
    if len(attributes) != len(args.attribute):
        raise CliError("an attribute name is given twice")
    message = Message(
        body,
        attributes=attributes,
        ordering_key=args.ordering_key,
        deduplication_id=args.deduplication_id,
        delay=args.delay,
    )
    url = url_from(args)
    with open_producer(url) as producer:
        if args.count == 1:
            print(producer.send(message))
            return 0
        started = time.monotonic()
        bar = ProgressBar(args.count, sys.stderr)
        remaining = args.count
        while remaining:
            chunk = min(CHUNK, remaining)
            producer.send_batch([message] * chunk)
            remaining -= chunk
            bar.advance(chunk)
        bar.finish()
    elapsed = time.monotonic() - started
    print(f"sent {args.count} messages to {display_url(url)} in {elapsed:.2f} s")
    return 0


def _read_body(args: argparse.Namespace) -> bytes:
    if args.body is not None and args.file is not None:
        raise CliError("give the body either as an argument or with --file, not both")
    if args.body is not None:
        # The bytes as given: an argument that is not UTF-8 reaches Python with
        # surrogate escapes, which only the file system encoding turns back into bytes.
        return os.fsencode(args.body)
    if args.file in (None, "-"):
        return sys.stdin.buffer.read()
    with open(args.file, "rb") as file:
        return file.read()
