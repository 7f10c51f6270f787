"""Command line: ``python -m cloudqueue_sqs.testing {install,run} --venv DIR``.

``install`` creates the LocalStack venv (idempotent). ``run`` starts LocalStack on 127.0.0.1,
prints its endpoint URL on a line of its own once SQS is ready, and runs until SIGTERM or SIGINT.
A CI script can start one shared server for a whole test session::

    python -m cloudqueue_sqs.testing run --venv .venv-localstack --endpoint-file ep.txt &
    while [ ! -s ep.txt ]; do sleep 0.2; done
    export CLOUDQUEUE_SQS_ENDPOINT=$(cat ep.txt)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ._errors import LocalStackError
from ._install import install_localstack, is_installed
from ._server import LocalStack


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m cloudqueue_sqs.testing")
    commands = parser.add_subparsers(dest="command", required=True)

    install = commands.add_parser("install", help="create the LocalStack venv (idempotent)")
    install.add_argument("--venv", required=True, type=Path, help="venv folder")
    install.add_argument("--python", help="interpreter that creates the venv (default: this one)")

    run = commands.add_parser("run", help="run LocalStack (SQS) until SIGTERM/SIGINT")
    run.add_argument("--venv", required=True, type=Path, help="venv made by `install`")
    run.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    run.add_argument("--start-timeout", type=float, default=60.0, help="seconds (default 60)")
    run.add_argument("--endpoint-file", type=Path, help="write the endpoint URL here when ready")

    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            python = install_localstack(args.venv, python=args.python, quiet=False)
            print(python, flush=True)
            return 0
        return _run(args.venv, args.port, args.start_timeout, args.endpoint_file)
    except LocalStackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(venv: Path, port: int | None, start_timeout: float, endpoint_file: Path | None) -> int:
    if not is_installed(venv):
        print(
            f"error: no LocalStack venv at {venv}; "
            f"run `python -m cloudqueue_sqs.testing install --venv {venv}` first",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the start, so that a signal during the start still stops the server.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # use_env=False: this command is what *provides* CLOUDQUEUE_SQS_ENDPOINT to others.
    server = LocalStack(venv, port=port, use_env=False, start_timeout=start_timeout)
    try:
        server.start()
        print(server.endpoint_url, flush=True)
        if endpoint_file is not None:
            # Atomic, so that a script polling for the file never reads half a URL.
            partial = endpoint_file.with_name(endpoint_file.name + ".tmp")
            partial.write_text(server.endpoint_url + "\n", encoding="utf-8")
            partial.replace(endpoint_file)
        # Wake up now and then to notice if LocalStack died on its own.
        while not stop.wait(1.0):
            if not server.is_alive():
                print(f"error: LocalStack exited\n{server.log_tail()}", file=sys.stderr)
                return 1
        return 0
    finally:
        server.stop()
        if endpoint_file is not None:
            endpoint_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
