"""Command line: ``python -m cloudqueue_rabbitmq.testing run``.

Starts a private RabbitMQ broker on 127.0.0.1 (see :class:`RabbitMqServer`), prints its
``amqp://`` URL on a line of its own once it is ready, and runs until SIGTERM or SIGINT; then
stops it and removes its data. For trying the provider by hand or sharing one broker in a script::

    python -m cloudqueue_rabbitmq.testing run --url-file url.txt &
    while [ ! -s url.txt ]; do sleep 0.2; done
    export RABBIT_URL=$(cat url.txt)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ._server import RabbitMqServer, RabbitMqServerError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m cloudqueue_rabbitmq.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a private RabbitMQ broker until SIGTERM/SIGINT")
    run.add_argument("--port", type=int, help="AMQP port on 127.0.0.1 (default: a free one)")
    run.add_argument("--user", default="cloudqueue", help="the broker's user (default cloudqueue)")
    run.add_argument("--password", help="its password (default: a random one)")
    run.add_argument("--management", action="store_true", help="enable the management plugin")
    run.add_argument("--start-timeout", type=float, default=90.0, help="seconds (default 90)")
    run.add_argument("--url-file", type=Path, help="write the amqp:// URL here when ready")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the start, so that a signal during the start still stops the broker.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = RabbitMqServer(
        port=args.port,
        user=args.user,
        password=args.password,
        plugins=["rabbitmq_management"] if args.management else [],
        start_timeout=args.start_timeout,
    )
    try:
        server.start()
        if args.url_file is not None:
            # Atomic, so that a script polling for the file never reads half a URL; written
            # before the URL is printed, so that a reader of either finds both.
            partial = args.url_file.with_name(args.url_file.name + ".tmp")
            partial.write_text(server.url + "\n", encoding="utf-8")
            partial.replace(args.url_file)
        print(server.url, flush=True)
        if args.management:
            print(f"management: http://127.0.0.1:{server.management_port}/", flush=True)
        while not stop.wait(1.0):  # wake now and then to notice a broker that died
            if not server.is_alive():
                print(f"error: rabbitmq-server exited\n{server.log_tail()}", file=sys.stderr)
                return 1
        return 0
    except RabbitMqServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        if args.url_file is not None:
            args.url_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
