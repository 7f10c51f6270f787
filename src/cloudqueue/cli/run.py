"""``cloudqueue run module:app``: run a worker application until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading

from ._common import CliError, non_negative_float

NAME = "run"
HELP = "run the handlers of a worker app (module:attribute) until SIGTERM or Ctrl-C"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="MODULE:APP",
                        help="where the cloudqueue.worker.App is, e.g. orders.worker:app (APP: app)")
    parser.add_argument("--grace", type=non_negative_float, default=30.0,
                        help="seconds running handlers get to finish on shutdown (default 30)")
    parser.add_argument("--stats-interval", type=non_negative_float, default=0.0, metavar="S",
                        help="print the counters to stderr every S seconds (default: only at exit)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")


def load_app(spec: str) -> object:
    """The object named by ``module:attribute`` (the current directory is importable)."""
    from ..worker import App

    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise CliError(f"{spec!r} is not MODULE:APP")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise CliError(f"cannot import {module_name!r}: no such module", 1) from None
        raise
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise CliError(f"{module_name}:{attribute or 'app'} is not a cloudqueue.worker.App", 1)
    return app


def format_counters(counters: dict[str, int]) -> str:
    return " ".join(f"{name}={value}" for name, value in counters.items())


def execute(args: argparse.Namespace) -> int:
    from ..worker import App

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = load_app(args.app)
    assert isinstance(app, App)
    stop_reporting = threading.Event()
    if args.stats_interval > 0:
        def report() -> None:
            while not stop_reporting.wait(args.stats_interval):
                print(f"cloudqueue run: {format_counters(app.counters())}", file=sys.stderr, flush=True)
        threading.Thread(target=report, name="cloudqueue stats", daemon=True).start()
    try:
        forced = app.run(grace=args.grace, handle_signals=True)
    finally:
        stop_reporting.set()
    for route in app.routes:
        print(f"cloudqueue run: {route.name}: {format_counters(route.counters.snapshot())}", file=sys.stderr)
    print(f"cloudqueue run: total: {format_counters(app.counters())}", file=sys.stderr, flush=True)
    if forced:
        # Settlements are flushed; handler threads that ignored the stop would keep
        # the interpreter alive at exit, so leave without waiting for them.
        sys.stdout.flush()
        os._exit(1)
    return 0
