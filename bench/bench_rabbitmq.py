"""The ``amqp://`` provider against a local RabbitMQ broker: the portable API vs a hand-written
aio-pika loop with publisher confirms and prefetch, for N messages sent, received and acked.

Run: ``python bench/bench_rabbitmq.py [--messages N] [--repeat R]`` (default 20,000 and 3).
Starts a private broker with :class:`cloudqueue_rabbitmq.testing.RabbitMqServer` (the system's
``rabbitmq-server`` package) unless ``$CLOUDQUEUE_RABBITMQ_URL`` names a running one
(``amqp://user:password@host:port/``). Everything runs in this process against the same broker,
on a fresh quorum queue per run, so the ratio compares like with like.

Each run sends N messages of 100 bytes, then receives and acks all N:

- cloudqueue: ``send_batch`` of 100 at a time (each message confirmed by the broker before the
  call returns), then ``receive(max_messages=100)`` and ``ack()`` of each message;
- aio-pika by hand: a channel with publisher confirms, 100 publishes awaited together
  (pipelined confirms), then a consumer with ``basic.qos(prefetch_count=100)`` acking each
  message as it arrives.

The runs take turns for ``--repeat`` rounds; the best round of each is reported, and the ratio
cloudqueue / aio-pika against the bar of 0.9x (issue 18).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
from collections.abc import Iterator

import _report
import aio_pika
from _workloads import BODY, best, rates
from cloudqueue_rabbitmq.testing import RabbitMqServer

import cloudqueue

URL_ENV = "CLOUDQUEUE_RABBITMQ_URL"
WINDOW = 100  # messages per send_batch / confirms awaited together / prefetch
_names = itertools.count()


def _queue_name() -> str:
    return f"bench-rabbitmq-{os.getpid()}-{next(_names)}"


@contextlib.contextmanager
def _queue(base_url: str) -> Iterator[str]:
    """A fresh quorum queue (declared the portable way): its name, deleted afterwards."""
    name = _queue_name()
    url = f"{base_url}?queue={name}"
    cloudqueue.declare(url)
    try:
        yield name
    finally:
        cloudqueue.delete(url)


def portable(base_url: str, count: int) -> None:
    with _queue(base_url) as name:
        url = f"{base_url}?queue={name}"
        with cloudqueue.open_producer(url) as producer:
            for start in range(0, count, WINDOW):
                producer.send_batch(
                    [cloudqueue.Message(BODY) for _ in range(min(WINDOW, count - start))]
                )
        with cloudqueue.open_consumer(url) as consumer:
            received = 0
            while received < count:
                for message in consumer.receive(max_messages=WINDOW, wait=1.0):
                    message.ack()
                    received += 1


async def _by_hand(base_url: str, name: str, count: int) -> None:
    connection = await aio_pika.connect(base_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        for start in range(0, count, WINDOW):
            await asyncio.gather(*(
                exchange.publish(
                    aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name,
                )
                for _ in range(min(WINDOW, count - start))
            ))
        await channel.set_qos(prefetch_count=WINDOW)
        queue = await channel.get_queue(name, ensure=False)
        received = 0
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                received += 1
                if received == count:
                    break


def aio_pika_by_hand(base_url: str, count: int) -> None:
    with _queue(base_url) as name:
        asyncio.run(_by_hand(base_url, name, count))


def report(base_url: str, count: int, repeat: int) -> None:
    runs = {
        "cloudqueue send_batch + receive/ack": (count, lambda n: portable(base_url, n)),
        "aio-pika by hand, confirms + prefetch": (count, lambda n: aio_pika_by_hand(base_url, n)),
    }
    found = best(rates(runs, repeat))
    print(f"{count:,} messages of {len(BODY)} B sent (confirmed), received and acked, "
          f"quorum queue, best of {repeat}:")
    for label, value in found.items():
        print(f"  {label:42} {value:10,.0f} msg/s")
    ratio = found["cloudqueue send_batch + receive/ack"] / found["aio-pika by hand, confirms + prefetch"]
    for label, value in found.items():
        kind: _report.Kind = "cloudqueue" if label.startswith("cloudqueue") else "baseline"
        _report.figure("rabbitmq", "send+receive+ack", label, value, kind=kind)
    _report.bar("rabbitmq: cloudqueue vs aio-pika by hand", ratio, at_least=0.9)
    print(f"  {'cloudqueue vs aio-pika by hand':42} {ratio:9.2f}x  "
          f"(bar 0.9x: {'met' if ratio >= 0.9 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.environ.get(URL_ENV):
        report(os.environ[URL_ENV], args.messages, args.repeat)
        return
    with RabbitMqServer() as server:
        report(server.url, args.messages, args.repeat)


if __name__ == "__main__":
    main()
