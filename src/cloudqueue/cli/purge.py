"""``cloudqueue purge URL``: drop every waiting message."""

from __future__ import annotations

import argparse

from .. import purge
from ._common import add_url_option, display_url, url_from

NAME = "purge"
HELP = "remove every message waiting in a queue or subscription"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", nargs="?", metavar="URL", help="destination URL")
    add_url_option(parser)


def execute(args: argparse.Namespace) -> int:
    url = url_from(args)
    purge(url)
    print(f"purged {display_url(url)}")
    return 0
