"""What the subcommands share: the backend URL, one-line errors, argument types."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from .._registry import provider_for, resolve
from .._url import parse_url
from ..errors import QueueError
from ..filters import Filter, where

__all__ = [
    "DEFAULT_URL_TEMPLATE",
    "ENV_URL",
    "CliError",
    "OneLineParser",
    "add_url_option",
    "attribute",
    "describe_error",
    "display_url",
    "fail",
    "label_url",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "require_rich",
    "url_from",
    "where_filter",
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


def label_url(url: str) -> str:
    """:func:`display_url`; for a URL its provider refuses (an unknown parameter), the
    URL parsed with that provider's secret parameters masked all the same; for one that
    does not parse at all, its scheme alone (the text may hold a secret nothing masked)."""
    try:
        return display_url(url)
    except QueueError:
        pass
    scheme, sep, _ = url.partition("://")
    try:
        return str(parse_url(url, secret_params=provider_for(scheme.lower()).secret_parameters))
    except QueueError:
        return f"{scheme}://..." if sep else "(not a URL)"


def describe_error(error: QueueError) -> str:
    """``Code: message`` on one line, as :func:`fail` prints it (messages are scrubbed of secrets)."""
    return " ".join(f"{error.code.value}: {error}".split())


#: What to run when a command needs the ``cli`` extra.
RICH_HINT = "pip install 'cloudqueue[cli]'"


def require_rich(command: str) -> None:
    """Raise a one-line CliError naming the fix when rich (the ``cli`` extra) is missing."""
    try:
        import rich  # noqa: F401
    except ImportError:
        raise CliError(f"`cloudqueue {command}` needs the rich library: {RICH_HINT}", 1) from None


def where_filter(pairs: list[tuple[str, str]]) -> Filter | None:
    """``--where NAME=VALUE`` options as one filter: every name must match (and),
    a name given several times matches any of its values (or)."""
    if not pairs:
        return None
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    conditions = [
        where(name).equals(given[0]) if len(given) == 1 else where(name).one_of(*given)
        for name, given in values.items()
    ]
    combined: Filter = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition
    return combined


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
