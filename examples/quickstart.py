"""The README's API example, runnable as is: ``python examples/quickstart.py [URL]``.

Uses ``memory://`` by default; pass another URL (``sqlite:///demo.db?queue=orders``)
to run the same code on another backend.
"""

from __future__ import annotations

import sys

import cloudqueue


def main(url: str = "memory://orders") -> None:
    cloudqueue.declare(url, dead_letter_after=5, lease=30.0)

    with cloudqueue.open_producer(url) as producer:
        message_id = producer.send(b"payload", attributes={"kind": "created"})
        ids = producer.send_batch([cloudqueue.Message(b"a"), cloudqueue.Message("text")])
        print("sent", message_id, *ids)

    with cloudqueue.open_consumer(url) as consumer:
        for message in consumer.receive(max_messages=10, wait=5.0):
            print(message.id, message.body, message.attributes, "attempt", message.delivery_attempt)
            if message.body == b"a":
                message.dead_letter(reason="shown in the dead-letter queue")
            else:
                message.ack()

    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url)) as dead_letters:
        for message in dead_letters.receive(wait=2.0):
            print("dead letter:", message.body, message.attributes)
            message.ack()


if __name__ == "__main__":
    main(*sys.argv[1:])
