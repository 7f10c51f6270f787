"""``cloudqueue demo``: the order-processing pipeline (see :mod:`cloudqueue.demo`)."""

from __future__ import annotations

import argparse
import sys

from ..demo import DEMO_QUEUE, run_demo
from ._common import add_url_option, non_negative_float, positive_int, url_from

NAME = "demo"
HELP = "run an order-processing pipeline with retries and dead letters, then print a summary"


def configure(parser: argparse.ArgumentParser) -> None:
    add_url_option(parser)
    parser.add_argument(
        "--orders", type=positive_int, default=24, metavar="N", help="orders to place (default 24)"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="chooses which orders and calls fail (default 42)"
    )
    parser.add_argument(
        "--timeout", type=non_negative_float, default=60.0, metavar="S",
        help="give up if the pipeline has not drained after S seconds (default 60)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary")


def execute(args: argparse.Namespace) -> int:
    report = run_demo(
        url_from(args, DEMO_QUEUE),
        orders=args.orders,
        seed=args.seed,
        timeout=args.timeout,
        log=None if args.quiet else sys.stdout,
    )
    print(report.table())
    return 0 if report.reconciled else 1
