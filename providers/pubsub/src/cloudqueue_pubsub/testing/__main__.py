"""``python -m cloudqueue_pubsub.testing --port 8085``: run the local Pub/Sub server.

Prints the address it listens on (one line, for PUBSUB_EMULATOR_HOST) and runs until SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import DEFAULT_PULL_WAIT_SECONDS, PubSubServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloudqueue_pubsub.testing",
        description="Local Google Cloud Pub/Sub server (gRPC) for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8085, help="port, 0 for any free one")
    parser.add_argument(
        "--pull-wait",
        type=float,
        default=DEFAULT_PULL_WAIT_SECONDS,
        help="seconds a Pull waits for messages before returning empty",
    )
    arguments = parser.parse_args(argv)

    try:
        server = PubSubServer(arguments.host, arguments.port, pull_wait_seconds=arguments.pull_wait)
        server.start()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(server.address, flush=True)
    # Event.wait with a timeout lets the main thread run the signal handler promptly.
    while not stop_requested.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
