"""What the subcommands share: the backend URL, one-line errors, argument types."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from .._registry import resolve

__all__ = [
    "DEFAULT_URL_TEMPLATE",
    "ENV_URL",
    "CliError",
    "OneLineParser",
    "add_url_option",
    "attribute",
    "display_url",
    "fail",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "url_from",
]

#: The backend used when neither ``--url`` nor ``$CLOUDQUEUE_URL`` is given: the
#: embedded SQLite provider, in a file of the current directory.
DEFAULT_URL_TEMPLATE = "sqlite:///cloudqueue.db?queue={name}"
#: The queue name in the default URL.
DEFAULT_QUEUE = "default"
#: Environment variable naming the backend URL.
ENV_URL = "CLOUDQUEUE_URL"


class CliError(Exception):
    """A usage problem found after parsing; printed as one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = 1) -> int:
    # Keep it to one line: multi-line SDK messages would otherwise scatter.
    print(f"cloudqueue: error: {' '.join(message.split())}", file=sys.stderr)
    return exit_code


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit code 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help=f"destination URL (default: ${ENV_URL}, else "
        f"{DEFAULT_URL_TEMPLATE.format(name=DEFAULT_QUEUE)})",
    )


def url_from(args: argparse.Namespace, name: str = DEFAULT_QUEUE) -> str:
    """The URL to use: a positional URL, ``--url``, ``$CLOUDQUEUE_URL``, then the default."""
    positional = getattr(args, "destination", None)
    option = getattr(args, "url", None)
    if positional and option and positional != option:
        raise CliError("give the URL once: either as an argument or with --url")
    return positional or option or os.environ.get(ENV_URL) or DEFAULT_URL_TEMPLATE.format(name=name)


def display_url(url: str) -> str:
    """``url`` with passwords and secret parameters replaced by ``***``."""
    return str(resolve(url)[1])


def attribute(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"attribute {text!r} is not NAME=VALUE")
    return name, value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value
