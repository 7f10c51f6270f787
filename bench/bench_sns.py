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
  ``send`` calls pays), and from 32 threads at once: at most 8 requests are under way
  (``max_concurrent_batches``, default), and the senders waiting behind them share the
  next ones (the engine's group commit);
- boto3 ``publish_batch`` of 10 entries at a time, hand-written.

The producer and the boto3 client are made once, before timing: both pay their
connection set-up outside the loop.

Fan-out: N messages published with ``send_batch`` to a topic with two subscriptions,
each drained by its own consumer (``max_in_flight=100``) on its own thread; reported as
messages per second per subscription, from the first publish to its last ack. The same
by hand with boto3 (``publish_batch`` loop, receive + ``delete_message_batch`` loops) in
the same round, as the reference for what the server itself allows.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _report
import boto3  # type: ignore[import-untyped]
from _workloads import best, rates
from cloudqueue_sqs.testing import LocalStack, install_localstack

import cloudqueue

BODY = "x" * 200
REGION = "us-east-1"
SUBSCRIPTIONS = ("billing", "shipping")
# More threads than the producer's default 8 concurrent requests (max_concurrent_batches):
# the senders beyond those 8 queue up and share the next requests (group commit).
THREADS = 32
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
        """Messages per second each subscription received and acked, end to end, through
        the portable API."""
        with self.topic(SUBSCRIPTIONS) as (name, _), contextlib.ExitStack() as stack:
            producer = stack.enter_context(cloudqueue.open_producer(self.url(name)))
            consumers = {
                s: stack.enter_context(cloudqueue.open_consumer(self.url(name, s), max_in_flight=100))
                for s in SUBSCRIPTIONS
            }
            producer.send(BODY)  # warm-up: STS and the clients' connections, not timed
            for consumer in consumers.values():
                _drain(consumer, 1)
            return _timed_fan_out(
                lambda: producer.send_batch([cloudqueue.Message(BODY) for _ in range(count)]),
                {s: functools.partial(_drain, c, count) for s, c in consumers.items()},
                count,
            )

    def fan_out_boto3(self, count: int) -> dict[str, float]:
        """The same by hand: publish_batch by 10, and per subscription a receive (10, long
        poll) + delete_message_batch loop on its queue."""
        sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name=REGION)
        with self.topic(SUBSCRIPTIONS) as (name, arn):
            queues = {s: sqs.get_queue_url(QueueName=f"{name}-{s}")["QueueUrl"] for s in SUBSCRIPTIONS}

            def publish() -> None:
                for start in range(0, count, 10):
                    entries = [{"Id": str(i), "Message": BODY} for i in range(min(10, count - start))]
                    self.sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)

            def drain(queue_url: str) -> None:
                received = 0
                while received < count:
                    got = sqs.receive_message(
                        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                    ).get("Messages", [])
                    if got:
                        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                        ])
                    received += len(got)

            return _timed_fan_out(
                publish, {s: functools.partial(drain, q) for s, q in queues.items()}, count
            )


def _timed_fan_out(
    publish: Callable[[], None], drains: dict[str, Callable[[], None]], count: int
) -> dict[str, float]:
    """Start every drain on its own thread, publish, and time each drain from the first
    publish to its last message."""
    finished: dict[str, float] = {}
    ready = threading.Barrier(len(drains) + 1)

    def run(subscription: str, drain: Callable[[], None]) -> None:
        ready.wait()
        drain()
        finished[subscription] = time.perf_counter()

    threads = [threading.Thread(target=run, args=pair) for pair in drains.items()]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    publish()
    for thread in threads:
        thread.join()
    return {s: count / (finished[s] - started) for s in drains}


def _drain(consumer: cloudqueue.Consumer, count: int) -> None:
    received = 0
    while received < count:
        for message in consumer.receive(max_messages=min(10, count - received), wait=1.0):
            message.ack()
            received += 1


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
    ratio = found["cloudqueue send_batch, 10 at a time"] / reference
    for label, value in found.items():
        kind: _report.Kind = "baseline" if label.startswith("boto3") else "cloudqueue"
        if label == ONE_THREAD:
            kind = "reference"  # one request per message by design: scale, not a contender
        _report.figure("sns", "publish", label, value, kind=kind)
    _report.bar("sns: send_batch vs boto3 publish_batch", ratio, at_least=0.9)
    print(f"  {'send_batch vs boto3 publish_batch':40} {ratio:9.2f}x  (bar 0.9x: "
          f"{'met' if ratio >= 0.9 else 'MISSED'})")
    ratio = found[f"cloudqueue send, {THREADS} threads"] / reference
    print(f"  {f'send from {THREADS} threads vs boto3':40} {ratio:9.2f}x  (no bar: "
          "one message per send call)")
    print()
    print(f"fan-out of {args.messages:,} messages to {len(SUBSCRIPTIONS)} subscriptions, "
          "per subscription, from the first publish to its last ack:")
    fan_out_best: dict[str, float] = {}
    for round_ in range(args.repeat):
        for label, run in (("cloudqueue", bench.fan_out), ("boto3 by hand", bench.fan_out_boto3)):
            per_subscription = run(args.messages)
            figures = ", ".join(f"{s} {v:6,.0f} msg/s" for s, v in per_subscription.items())
            print(f"  round {round_ + 1}, {label:14} {figures}")
            # The slower subscription is what the fan-out delivered to both.
            slowest = min(per_subscription.values())
            fan_out_best[label] = max(fan_out_best.get(label, 0.0), slowest)
    workload = f"fan-out to {len(SUBSCRIPTIONS)} subscriptions (per subscription)"
    _report.figure("sns", workload, "cloudqueue send_batch + consumers", fan_out_best["cloudqueue"])
    _report.figure("sns", workload, "boto3 publish_batch + receive/delete loops",
                   fan_out_best["boto3 by hand"], kind="baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with _server() as server:
        report(Bench(server.endpoint_url), args)


if __name__ == "__main__":
    main()
