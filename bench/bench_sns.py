"""The ``sns://`` provider against LocalStack: publish throughput of the portable API vs a
hand-batched boto3 ``publish_batch`` loop, and end-to-end fan-out to two subscriptions.

Run: ``python bench/bench_sns.py [--messages N] [--repeat R]``. Starts LocalStack from
``$CLOUDQUEUE_LOCALSTACK_VENV`` (default ``.venv-localstack``, installed if missing) unless
``$CLOUDQUEUE_SQS_ENDPOINT`` names a running one. Everything runs in this process against
the same server, so the ratios compare like with like.

Publish (issue 15; bar: portable >= 0.9x the boto3 loop): N messages of 200 bytes to a
topic without subscriptions, so only the publish path is measured (with subscriptions
LocalStack also delivers on the same two cores, which would slow whichever workload ran
next). The workloads take turns for ``--repeat`` rounds (best round reported):

- ``send_batch`` of 10 messages at a time (one ``PublishBatch`` each);
- the blocking ``send`` from one thread (one request per message: the baseline a loop of
  ``send`` calls pays), and from 10 threads at once (concurrent sends share requests);
- boto3 ``publish_batch`` of 10 entries at a time, hand-written.

The producer and the boto3 client are made once, before timing: both pay their
connection set-up outside the loop.

Fan-out: N messages published with ``send_batch`` to a topic with two subscriptions,
each drained by its own consumer (``max_in_flight=100``) on its own thread; reported as
messages per second per subscription, from the first publish to the last ack.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3  # type: ignore[import-untyped]
from _workloads import best, rates
from cloudqueue_sqs.testing import LocalStack, install_localstack

import cloudqueue

BODY = "x" * 200
REGION = "us-east-1"
SUBSCRIPTIONS = ("billing", "shipping")
THREADS = 10
ONE_THREAD = "cloudqueue send, one thread"
_names = itertools.count()
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")


class Bench:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.query = urlencode({"region": REGION, "endpoint_url": endpoint})
        self.sns = boto3.client("sns", endpoint_url=endpoint, region_name=REGION)

    def url(self, topic: str, subscription: str | None = None) -> str:
        extra = f"&subscription={subscription}" if subscription else ""
        return f"sns://{topic}?{self.query}{extra}"

    @contextlib.contextmanager
    def topic(self, subscriptions: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
        """A fresh topic (and subscriptions): its name and its ARN."""
        name = f"bench-sns-{os.getpid()}-{next(_names)}"
        cloudqueue.declare(self.url(name))
        for subscription in subscriptions:
            cloudqueue.declare(self.url(name, subscription), lease=30)
        try:
            yield name, self.sns.create_topic(Name=name)["TopicArn"]  # idempotent: the ARN
        finally:
            cloudqueue.delete(self.url(name))  # its subscriptions and their queues too

    # -- publish ---------------------------------------------------------------------

    def publish_runs(
        self, producer: cloudqueue.Producer, topic_arn: str
    ) -> dict[str, Callable[[int], None]]:
        def send_batch_by_10(count: int) -> None:
            for start in range(0, count, 10):
                producer.send_batch(
                    [cloudqueue.Message(BODY) for _ in range(min(10, count - start))]
                )

        def send_one_thread(count: int) -> None:
            for _ in range(count):
                producer.send(BODY)

        def send_threads(count: int) -> None:
            def worker(share: int) -> None:
                for _ in range(share):
                    producer.send(BODY)

            shares = [count // THREADS + (i < count % THREADS) for i in range(THREADS)]
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(worker, shares))

        def boto3_publish_batch(count: int) -> None:
            for start in range(0, count, 10):
                entries = [
                    {"Id": str(i), "Message": BODY} for i in range(min(10, count - start))
                ]
                self.sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)

        return {
            "cloudqueue send_batch, 10 at a time": send_batch_by_10,
            f"cloudqueue send, {THREADS} threads": send_threads,
            ONE_THREAD: send_one_thread,
            "boto3 publish_batch loop, by 10": boto3_publish_batch,
        }

    def publish(self, count: int, repeat: int) -> dict[str, float]:
        with self.topic() as (name, arn), cloudqueue.open_producer(self.url(name)) as producer:
            producer.send(BODY)  # first use resolves the account (STS) once: not timed
            # One request per message is slow: a fifth of the messages keeps the run short.
            runs = {
                label: (max(count // 5, 10) if label == ONE_THREAD else count, run)
                for label, run in self.publish_runs(producer, arn).items()
            }
            return best(rates(runs, repeat))

    # -- fan-out ---------------------------------------------------------------------

    def fan_out(self, count: int) -> dict[str, float]:
        """Messages per second each subscription received and acked, end to end."""
        with self.topic(SUBSCRIPTIONS) as (name, _):
            consumers = [
                cloudqueue.open_consumer(self.url(name, s), max_in_flight=100) for s in SUBSCRIPTIONS
            ]
            finished: dict[str, float] = {}
            ready = threading.Barrier(len(SUBSCRIPTIONS) + 1)

            def drain(subscription: str, consumer: cloudqueue.Consumer) -> None:
                ready.wait()
                received = 0
                while received < count:
                    for message in consumer.receive(max_messages=10, wait=1.0):
                        message.ack()
                        received += 1
                finished[subscription] = time.perf_counter()

            threads = [
                threading.Thread(target=drain, args=pair)
                for pair in zip(SUBSCRIPTIONS, consumers, strict=True)
            ]
            try:
                with cloudqueue.open_producer(self.url(name)) as producer:
                    producer.send_batch([cloudqueue.Message("warm-up")])
                    for consumer in consumers:  # the warm-up message, one per subscription
                        _drain_one(consumer)
                    for thread in threads:
                        thread.start()
                    ready.wait()
                    started = time.perf_counter()
                    producer.send_batch([cloudqueue.Message(BODY) for _ in range(count)])
                for thread in threads:
                    thread.join()
            finally:
                for consumer in consumers:
                    consumer.close()
            return {s: count / (finished[s] - started) for s in SUBSCRIPTIONS}


def _drain_one(consumer: cloudqueue.Consumer) -> None:
    while not (got := consumer.receive(max_messages=1, wait=1.0)):
        pass
    for message in got:
        message.ack()


def _server() -> LocalStack:
    if os.environ.get("CLOUDQUEUE_SQS_ENDPOINT"):
        return LocalStack()
    venv = Path(os.environ.get("CLOUDQUEUE_LOCALSTACK_VENV") or ".venv-localstack")
    install_localstack(venv)
    return LocalStack(venv)


def report(bench: Bench, args: Any) -> None:
    found = bench.publish(args.messages, args.repeat)
    print(f"publish, {args.messages:,} messages of {len(BODY)} B (one thread: a fifth of them), "
          f"best of {args.repeat}:")
    for label, value in found.items():
        print(f"  {label:40} {value:10,.0f} msg/s")
    reference = found["boto3 publish_batch loop, by 10"]
    for label in ("cloudqueue send_batch, 10 at a time", f"cloudqueue send, {THREADS} threads"):
        ratio = found[label] / reference
        print(f"  {label + ' vs boto3':40} {ratio:9.2f}x  (bar 0.9x: "
              f"{'met' if ratio >= 0.9 else 'MISSED'})")
    print()
    for round_ in range(args.repeat):
        per_subscription = bench.fan_out(args.messages)
        figures = ", ".join(f"{s} {v:,.0f} msg/s" for s, v in per_subscription.items())
        print(f"fan-out of {args.messages:,} messages to {len(SUBSCRIPTIONS)} subscriptions "
              f"(round {round_ + 1}): {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with _server() as server:
        report(Bench(server.endpoint_url), args)


if __name__ == "__main__":
    main()
