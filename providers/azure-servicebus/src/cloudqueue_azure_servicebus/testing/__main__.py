"""``python -m cloudqueue_azure_servicebus.testing --port N``: run the broker until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._broker import ServiceBusBroker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Azure Service Bus broker for tests")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=5672, help="port (0 picks a free one)")
    parser.add_argument("--queue", action="append", default=[], help="create a queue at start")
    parser.add_argument("--topic", action="append", default=[],
                        help="create a topic at start; TOPIC:SUB[,SUB...] adds subscriptions")
    parser.add_argument(
        "--require-valid-tokens", action="store_true",
        help="refuse shared access signatures not signed with the printed connection string's key "
             "(bearer tokens come only from token_credential() in the broker's own process)",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ServiceBusBroker(args.host, args.port, require_valid_tokens=args.require_valid_tokens) as broker:
        for name in args.queue:
            broker.create_queue(name)
        for spec in args.topic:
            topic, _, subs = spec.partition(":")
            broker.create_topic(topic)
            for sub in filter(None, subs.split(",")):
                broker.create_subscription(topic, sub)
        print(broker.connection_string, flush=True)
        print(f"# admin certificate: {broker.certificate_path}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
