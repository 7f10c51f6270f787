"""``cloudqueue redrive DLQ_URL``: put dead letters back, send first and settle after.

Moving messages is not undone by a second command, so it asks first on a terminal
and refuses to guess elsewhere: scripts say ``--yes``. A dry run moves nothing and
never asks.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .._registry import resolve
from ..driver import QueueStats
from ..errors import QueueError
from ._common import CliError, attribute, label_url, positive_int, where_filter

if TYPE_CHECKING:
    from ..ops import RedriveReport

NAME = "redrive"
HELP = (
    "move dead letters from a dead-letter queue back to their source (or --to URL): each is "
    "sent, then removed, so a crash can duplicate but never lose one"
)

#: Failures listed by error in the final report, and example ids shown for each.
SHOWN_ERRORS = 10
SHOWN_IDS = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", metavar="DLQ_URL",
        help="the dead-letter queue to empty (`cloudqueue declare` prints it; "
        "`cloudqueue dlq SOURCE_URL` lists what it holds)",
    )
    parser.add_argument("--to", metavar="URL", help="send them here instead of back to their source")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="stop after moving N")
    parser.add_argument("--rate", type=messages_per_second, metavar="R", help="move at most R per second")
    parser.add_argument(
        "--where", type=attribute, action="append", default=[], metavar="NAME=VALUE",
        help="only dead letters with this attribute (repeatable: every NAME must match; "
        "a NAME given twice matches either value); the others stay in the dead-letter queue",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would move; move nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def messages_per_second(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of messages per second") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of messages per second above 0")
    return value


def execute(args: argparse.Namespace) -> int:
    from ..ops import redrive, stats  # imported when used: `cloudqueue --help` stays fast

    where = where_filter(args.where)
    target = label_url(args.to) if args.to else _source_of(args.url)
    waiting = _waiting(stats, args.url)
    if not args.dry_run and not args.yes:
        _confirm(args, target, waiting)
    known = [bound for bound in (waiting, args.limit) if bound is not None]
    total = min(known) if known else None  # the bar pulses when neither is known
    with _progress_bar(total, args.dry_run) as progress:
        report = redrive(
            args.url, args.to, limit=args.limit, rate=args.rate, where=where,
            dry_run=args.dry_run, progress=progress,
        )
    print(summary(report, filtered=where is not None))
    return 1 if report.failures else 0


def _source_of(url: str) -> str:
    # Asked before confirming, so that the question names the destination and a URL that
    # is no dead-letter queue is refused before anyone types "y".
    provider, parsed = resolve(url)
    return str(provider.redrive_source(parsed))


def _waiting(stats: Callable[[str], QueueStats], url: str) -> int | None:
    try:
        return stats(url).available
    except QueueError:  # only a hint for the question and the bar; the redrive says what is wrong
        return None


def _confirm(args: argparse.Namespace, target: str, waiting: int | None) -> None:
    if not sys.stdin.isatty():
        raise CliError("refusing to redrive without confirmation: standard input is not a terminal; "
                       "pass --yes to redrive anyway, or --dry-run to see what would move")
    what = "all" if waiting is None else f"up to {waiting}"
    if args.limit is not None:
        what = f"at most {args.limit} of the"
    conditions = f" with {' and '.join(f'{n}={v}' for n, v in args.where)}" if args.where else ""
    print(f"Move {what} dead letters{conditions} from {label_url(args.url)} to {target}? [y/N] ",
          end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("not confirmed: nothing was moved", 1)


@contextmanager
def _progress_bar(total: int | None, dry_run: bool) -> Iterator[Callable[[RedriveReport], None] | None]:
    """A rich progress bar on stderr when it is a terminal (nothing in logs and pipes)."""
    if not sys.stderr.isatty():
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        print("(no progress bar without rich: pip install 'cloudqueue[cli]')", file=sys.stderr)
        yield None
        return
    verb = "counting" if dry_run else "moving"
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(verb, total=total, detail="")

        def update(report: RedriveReport) -> None:
            detail = f"{report.rate:.0f} msg/s  skipped {report.skipped}  failed {len(report.failures)}"
            bar.update(task, completed=report.moved, detail=detail)

        yield update


def summary(report: RedriveReport, *, filtered: bool) -> str:
    """The final report: counts, failures by error, moves by dead-letter reason."""
    verb = "would move" if report.dry_run else "moved"
    lines = [
        f"{verb} {report.moved} dead letters from {report.source} to {report.target} "
        f"in {report.elapsed:.2f} s ({report.rate:.1f} msg/s)",
        f"skipped {report.skipped}"
        + (" not matching --where (left in the dead-letter queue)" if filtered else ""),
        f"failed {len(report.failures)}" + (" (left in the dead-letter queue):" if report.failures else ""),
    ]
    by_error: dict[str, list[str]] = {}
    for failure in report.failures:
        by_error.setdefault(" ".join(failure.error.split()), []).append(failure.message_id)
    ranked = sorted(by_error.items(), key=lambda item: -len(item[1]))
    for error, ids in ranked[:SHOWN_ERRORS]:
        examples = ", ".join(ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")
        lines.append(f"  {len(ids):>6}  {error} (e.g. {examples})")
    if len(ranked) > SHOWN_ERRORS:
        lines.append(f"  and {len(ranked) - SHOWN_ERRORS} more kinds of error")
    if report.reasons:
        lines.append("by dead-letter reason:")
        for reason, moved in Counter(report.reasons).most_common():
            lines.append(f"  {moved:>6}  {reason or '(unknown)'}")
    return "\n".join(lines)
