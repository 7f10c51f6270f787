"""``cloudqueue receive``: print up to N messages, then ack them or hand them back."""

from __future__ import annotations

import argparse
import base64
import json
import time

from .. import ReceivedMessage, open_consumer
from ._common import add_url_option, non_negative_float, positive_int, url_from

NAME = "receive"
HELP = "receive up to N messages and print them (handed back unless --ack)"

#: After the first messages arrive, how long to wait for more before returning.
SETTLE_WAIT = 0.2


def configure(parser: argparse.ArgumentParser) -> None:
    add_url_option(parser)
    parser.add_argument(
        "-n", type=positive_int, default=1, metavar="N", help="at most N messages (default 1)"
    )
    parser.add_argument(
        "--wait", type=non_negative_float, default=5.0, metavar="S",
        help="wait up to S seconds for the first message (default 5)",
    )
    parser.add_argument(
        "--ack", action="store_true",
        help="acknowledge what was printed; without it messages are handed back at once "
        "(a nack, which counts as a delivery attempt)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def execute(args: argparse.Namespace) -> int:
    # Held (unsettled) messages count against max_in_flight: allow all N, and
    # prefetch no more than will be printed.
    with open_consumer(url_from(args), max_in_flight=args.n) as consumer:
        deadline = time.monotonic() + args.wait
        held: list[ReceivedMessage] = []
        count = 0
        while count < args.n:
            # Wait the full time for the first message only; then take what is ready.
            wait = max(0.0, deadline - time.monotonic()) if not count else SETTLE_WAIT
            batch = consumer.receive(max_messages=min(args.n - count, 100), wait=wait)
            if not batch:
                break
            count += len(batch)
            for message in batch:
                print(to_json(message) if args.json else to_line(message), flush=True)
                if args.ack:
                    message.ack()
                else:
                    held.append(message)  # handed back only at the end, or we would see it again
        for message in held:
            message.nack()
    return 0


def body_fields(body: bytes) -> dict[str, object]:
    """The body as text when it is UTF-8, else as base64 with a flag saying so."""
    try:
        return {"body": body.decode("utf-8"), "base64": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "base64": True}


def to_json(message: ReceivedMessage) -> str:
    return json.dumps(
        {
            "id": message.id,
            **body_fields(message.body),
            "attributes": message.attributes,
            "delivery_attempt": message.delivery_attempt,
            "enqueued_at": message.enqueued_at.isoformat() if message.enqueued_at else None,
            "ordering_key": message.ordering_key,
        },
        ensure_ascii=False,
    )


def to_line(message: ReceivedMessage) -> str:
    fields = body_fields(message.body)
    body = f"base64:{fields['body']}" if fields["base64"] else repr(fields["body"])
    attributes = " ".join(f"{k}={v}" for k, v in sorted(message.attributes.items()))
    return "  ".join(
        part
        for part in (message.id, f"attempt={message.delivery_attempt}", attributes, body)
        if part
    )
