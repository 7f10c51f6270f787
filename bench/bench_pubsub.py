"""The Pub/Sub provider through the portable API vs hand-written loops on the official client.

Run: ``python bench/bench_pubsub.py [--messages N] [--rounds R]``. A local Pub/Sub server
(``cloudqueue_pubsub.testing.PubSubServer``) runs in this process; every variant sends,
receives and acknowledges the same number of messages, one after the other, best of R rounds.

Variants:
- portable (sync / asyncio): ``send_batch`` of every message, then ``receive`` (up to 1,000)
  and ``ack`` each message;
- baseline pull: the client's own batching publisher (``PublisherClient.publish`` futures,
  up to 1,000 messages per request), then synchronous ``pull`` + ``acknowledge`` of each
  response's ack ids in one call;
- baseline streaming: the same publisher, then ``SubscriberClient.subscribe`` (streaming pull
  with the client's own lease management and batched acks).

Bars (issue 5): portable >= 0.9x the faster baseline; Publish requests per message <= 0.05
and Acknowledge requests per message <= 0.1, counted by the server.

Redrive (issue 14): the shared workload of ``_ops_workload`` on the same server:
``cloudqueue.ops.redrive`` of N dead letters back to their subscription (the topic's only
one) vs the portable batched send of the same messages, in the same run; bar 0.8x.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent import futures

import _report
from _ops_workload import BAR, compare
from cloudqueue_pubsub.testing import PubSubServer
from google.cloud import pubsub_v1

import cloudqueue

PROJECT = "bench-project"
BODY = b"x" * 100
_names = itertools.count()


class Run:
    def __init__(self, server: PubSubServer) -> None:
        self.server = server
        topic = f"bench-{os.getpid()}-{next(_names)}"
        self.topic_id = topic
        self.url = f"pubsub://{PROJECT}/{topic}?subscription={topic}-sub"
        cloudqueue.declare(self.url, lease=60)
        self.topic = f"projects/{PROJECT}/topics/{topic}"
        self.subscription = f"projects/{PROJECT}/subscriptions/{topic}-sub"
        server.reset_counts()


def portable_sync(run: Run, count: int) -> None:
    messages = [cloudqueue.Message(BODY, attributes={"i": str(i)}) for i in range(count)]
    with cloudqueue.open_producer(run.url) as producer:
        producer.send_batch(messages)
    got = 0
    with cloudqueue.open_consumer(run.url) as consumer:
        while got < count:
            for message in consumer.receive(max_messages=1000, wait=5.0):
                message.ack()
                got += 1


def portable_async(run: Run, count: int) -> None:
    async def main() -> None:
        messages = [cloudqueue.Message(BODY, attributes={"i": str(i)}) for i in range(count)]
        async with cloudqueue.aio.open_producer(run.url) as producer:
            await producer.send_batch(messages)
        got = 0
        async with cloudqueue.aio.open_consumer(run.url) as consumer:
            while got < count:
                for message in await consumer.receive(max_messages=1000, wait=5.0):
                    await message.ack()
                    got += 1

    asyncio.run(main())


def _publish_with_client(run: Run, count: int) -> None:
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.01)
    )
    pending = [publisher.publish(run.topic, BODY, i=str(i)) for i in range(count)]
    futures.wait(pending)
    for future in pending:
        future.result()
    publisher.stop()
    publisher.transport.close()


def baseline_pull(run: Run, count: int) -> None:
    _publish_with_client(run, count)
    subscriber = pubsub_v1.SubscriberClient()
    got = 0
    while got < count:
        response = subscriber.pull(subscription=run.subscription, max_messages=1000)
        ack_ids = [received.ack_id for received in response.received_messages]
        if ack_ids:
            subscriber.acknowledge(subscription=run.subscription, ack_ids=ack_ids)
        got += len(ack_ids)
    subscriber.close()


def baseline_streaming(run: Run, count: int) -> None:
    _publish_with_client(run, count)
    subscriber = pubsub_v1.SubscriberClient()
    done = threading.Event()
    got = 0
    lock = threading.Lock()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        nonlocal got
        message.ack()
        with lock:
            got += 1
            if got >= count:
                done.set()

    flow = pubsub_v1.types.FlowControl(max_messages=1000)
    future = subscriber.subscribe(run.subscription, callback, flow_control=flow)
    done.wait(120)
    future.cancel()
    future.result()
    subscriber.close()


def measure(
    server: PubSubServer, count: int, rounds: int, body: Callable[[Run, int], None]
) -> tuple[float, dict[str, int]]:
    """Messages per second (best of ``rounds``) and the server's request counts of that round."""
    best, best_counts = 0.0, {}
    for _ in range(rounds):
        run = Run(server)
        gc.collect()
        started = time.perf_counter()
        body(run, count)
        elapsed = time.perf_counter() - started
        if count / elapsed > best:
            best, best_counts = count / elapsed, server.request_counts()
        cloudqueue.delete(f"pubsub://{PROJECT}/{run.topic_id}")
    return best, best_counts


def redrive_queue() -> str:
    """A fresh topic whose only subscription dead-letters (a redrive may publish to it)."""
    topic = f"bench-ops-{os.getpid()}-{next(_names)}"
    url = f"pubsub://{PROJECT}/{topic}?subscription={topic}-sub"
    cloudqueue.declare(url, lease=60, dead_letter_after=5)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    count = args.messages
    with PubSubServer(pull_wait_seconds=0.5) as server:
        os.environ["PUBSUB_EMULATOR_HOST"] = server.address
        results = {
            name: measure(server, count, args.rounds, body)
            for name, body in (
                ("baseline pull", baseline_pull),
                ("baseline streaming", baseline_streaming),
                ("portable sync", portable_sync),
                ("portable asyncio", portable_async),
            )
        }
        redrive_ratio = compare("pubsub (local server)", redrive_queue, count, args.rounds)
        print()
    baseline = max(results["baseline pull"][0], results["baseline streaming"][0])
    print(f"{count:,} messages sent, received and acknowledged; best of {args.rounds}")
    print(f"{'variant':<20} {'msg/s':>9} {'vs base':>8} {'Publish/msg':>12} "
          f"{'Pull/msg':>9} {'Ack/msg':>8} {'Modify/msg':>11}")
    for name, (rate, counts) in results.items():
        print(
            f"{name:<20} {rate:>9,.0f} {rate / baseline:>7.2f}x "
            f"{counts.get('Publish', 0) / count:>12.4f} {counts.get('Pull', 0) / count:>9.4f} "
            f"{counts.get('Acknowledge', 0) / count:>8.4f} "
            f"{counts.get('ModifyAckDeadline', 0) / count:>11.4f}"
        )
    sync_rate, sync_counts = results["portable sync"]
    for name, (rate, _) in results.items():
        kind: _report.Kind = "baseline" if name.startswith("baseline") else "cloudqueue"
        _report.figure("pubsub", "send+receive+ack", name, rate, kind=kind)
    _report.bar("pubsub: portable vs the faster client baseline", sync_rate / baseline, at_least=0.9)
    _report.bar("pubsub: Publish requests per message", sync_counts.get("Publish", 0) / count,
                at_most=0.05)
    _report.bar("pubsub: Acknowledge requests per message",
                sync_counts.get("Acknowledge", 0) / count, at_most=0.1)
    verdicts = [
        ("portable >= 0.9x the faster baseline", sync_rate / baseline >= 0.9),
        ("Publish requests per message <= 0.05", sync_counts.get("Publish", 0) / count <= 0.05),
        ("Acknowledge requests per message <= 0.1",
         sync_counts.get("Acknowledge", 0) / count <= 0.1),
        (f"redrive >= {BAR}x the batched send of the same messages", redrive_ratio >= BAR),
    ]
    for what, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")


if __name__ == "__main__":
    main()
