"""``cloudqueue top URL...``: a live view of queue depths and rates until Ctrl-C.

The loop only reads stats and records them; what is drawn is
:func:`cloudqueue.cli._top_view.render` of the histories.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime

from ..driver import QueueStats
from ..errors import QueueError
from ._common import CliError, describe_error, label_url, positive_float, require_rich
from ._top_history import History, Sample

NAME = "top"
HELP = "live view of depth, in flight, dead letters, rates and a depth sparkline, until Ctrl-C"

#: Smallest refresh interval: each refresh reads the stats of every URL.
MIN_INTERVAL = 0.1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="+", metavar="URL", help="queue or subscription URL (repeatable)")
    parser.add_argument(
        "--interval", type=positive_float, default=2.0, metavar="S",
        help=f"seconds between refreshes (default 2, at least {MIN_INTERVAL})",
    )


def execute(args: argparse.Namespace) -> int:
    if args.interval < MIN_INTERVAL:
        raise CliError(f"--interval {args.interval:g} is below the minimum of {MIN_INTERVAL} s")
    require_rich(NAME)
    if not sys.stdout.isatty():
        raise CliError("`cloudqueue top` draws on a terminal and stdout is not one: use `cloudqueue stats`")
    from rich.console import Console
    from rich.live import Live

    from ..ops import stats
    from ._top_view import SPARK_WIDTH, render, spark_bucket

    keep = spark_bucket(args.interval) * SPARK_WIDTH
    histories = [History(label_url(url), keep) for url in args.urls]
    try:
        # screen=True: the alternate screen, left (and the cursor shown again) on the way out,
        # also when Ctrl-C interrupts a reading.
        with Live(console=Console(), screen=True, auto_refresh=False) as live:
            while True:
                started = time.monotonic()
                for url, history in zip(args.urls, histories, strict=True):
                    history.record(_read(stats, url))
                screen = render(
                    histories, now=time.monotonic(), interval=args.interval,
                    clock=datetime.now().strftime("%H:%M:%S"),
                )
                live.update(screen, refresh=True)
                time.sleep(max(0.0, started + args.interval - time.monotonic()))
    except KeyboardInterrupt:  # the way to leave: not an error
        return 0


def _read(stats: Callable[[str], QueueStats], url: str) -> Sample:
    try:
        reading = stats(url)
    except QueueError as error:  # shown in the URL's row; the other rows go on
        return Sample(time.monotonic(), None, describe_error(error))
    except OSError as error:
        return Sample(time.monotonic(), None, f"{error.strerror or error}")
    return Sample(time.monotonic(), reading)
