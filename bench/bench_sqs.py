"""The SQS provider against LocalStack: API requests per message, and throughput of the
portable API vs hand-written boto3 loops (batched and naive), sync and asyncio.

Run: ``python bench/bench_sqs.py [--messages N] [--repeat R]``. Starts LocalStack from
``$CLOUDQUEUE_LOCALSTACK_VENV`` (default ``.venv-localstack``, installed if missing) unless
``$CLOUDQUEUE_SQS_ENDPOINT`` names a running one. Every workload runs in this process,
one after the other, on a fresh queue, so the ratios compare like with like. Each
workload sends N messages, then receives and acks (deletes) all of them.

Bars (issue 20, raised from issue 4's 0.35 and 0.9x): requests per message <= 0.31;
portable >= 1.2x the batched boto3 loop; portable >= 3x the naive one-call-per-message loop.

Consumer options used: ``max_in_flight=100`` and ``settle_delay=0.05`` (the default), i.e.
what a user draining a queue as fast as it can would set; nothing else is tuned.

Redrive (issue 14): the shared workload of ``_ops_workload`` (``cloudqueue.ops.redrive`` of
``--redrive-messages`` dead letters back to their queue vs the portable batched send of the
same messages, in the same run; bar 0.8x), then two references on the same number: a
hand-written boto3 receive + send + delete loop, and SQS's own ``StartMessageMoveTask``
(at 500 msg/s, the most AWS allows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _report
import boto3  # type: ignore[import-untyped]
from _ops_workload import compare
from cloudqueue_sqs.testing import LocalStack, install_localstack

import cloudqueue

BODY = "x" * 200
REGION = "us-east-1"
_names = itertools.count()
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")


class Bench:
    def __init__(self, endpoint: str, count: int) -> None:
        self.endpoint = endpoint
        self.count = count
        self.client = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)

    @contextlib.contextmanager
    def queue(self) -> Iterator[tuple[str, str]]:
        """A fresh queue: its cloudqueue URL and its SQS queue URL."""
        name = f"bench-{os.getpid()}-{next(_names)}"
        url = f"sqs://{name}?" + urlencode({"region": REGION, "endpoint_url": self.endpoint})
        cloudqueue.declare(url, lease=30)
        try:
            yield url, self.client.get_queue_url(QueueName=name)["QueueUrl"]
        finally:
            cloudqueue.delete(url)

    # -- the portable API ---------------------------------------------------------

    def portable(self, url: str, count_requests: Callable[[Any], None] | None = None) -> None:
        with cloudqueue.open_producer(url) as producer, cloudqueue.open_consumer(
            url, max_in_flight=100
        ) as consumer:
            if count_requests is not None:
                client = producer.as_(object)
                count_requests(client)
            producer.send_batch([cloudqueue.Message(BODY) for _ in range(self.count)])
            received = 0
            while received < self.count:
                for message in consumer.receive(max_messages=10, wait=1.0):
                    message.ack()
                    received += 1

    def portable_async(self, url: str) -> None:
        async def main() -> None:
            async with cloudqueue.aio.open_producer(url) as producer, cloudqueue.aio.open_consumer(
                url, max_in_flight=100
            ) as consumer:
                await producer.send_batch([cloudqueue.Message(BODY) for _ in range(self.count)])
                received = 0
                while received < self.count:
                    for message in await consumer.receive(max_messages=10, wait=1.0):
                        await message.ack()
                        received += 1

        asyncio.run(main())

    # -- hand-written boto3 loops ---------------------------------------------------

    def boto3_batched(self, queue_url: str) -> None:
        client = self.client
        for start in range(0, self.count, 10):
            entries = [{"Id": str(i), "MessageBody": BODY} for i in range(min(10, self.count - start))]
            client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        received = 0
        while received < self.count:
            messages = client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if messages:
                client.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ])
            received += len(messages)

    def boto3_naive(self, queue_url: str) -> None:
        client = self.client
        for _ in range(self.count):
            client.send_message(QueueUrl=queue_url, MessageBody=BODY)
        received = 0
        while received < self.count:
            for message in client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1
            ).get("Messages", []):
                client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                received += 1

    def aiobotocore_batched(self, queue_url: str) -> None:
        """The batched loop on aiobotocore: what a native asyncio driver could reach."""
        from aiobotocore.session import get_session  # type: ignore[import-untyped]

        async def main() -> None:
            async with get_session().create_client(
                "sqs", endpoint_url=self.endpoint, region_name=REGION
            ) as client:
                for start in range(0, self.count, 10):
                    entries = [
                        {"Id": str(i), "MessageBody": BODY} for i in range(min(10, self.count - start))
                    ]
                    await client.send_message_batch(QueueUrl=queue_url, Entries=entries)
                received = 0
                while received < self.count:
                    answer = await client.receive_message(
                        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                    )
                    messages = answer.get("Messages", [])
                    if messages:
                        await client.delete_message_batch(QueueUrl=queue_url, Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(messages)
                        ])
                    received += len(messages)

        asyncio.run(main())

    # -- measuring -------------------------------------------------------------------

    def rate(self, run: Callable[[str, str], None], repeat: int) -> float:
        """Messages per second (sent, received and acked), best of ``repeat`` runs."""
        best = 0.0
        for _ in range(repeat):
            with self.queue() as (url, queue_url):
                started = time.perf_counter()
                run(url, queue_url)
                best = max(best, self.count / (time.perf_counter() - started))
        return best

    def requests_per_message(self) -> tuple[int, dict[str, int]]:
        calls: dict[str, int] = {}

        def counter(client: Any) -> None:
            def count(event_name: str, **_: Any) -> None:
                operation = event_name.rsplit(".", 1)[-1]
                calls[operation] = calls.get(operation, 0) + 1

            # "before-send" fires once per HTTP request put on the wire, retries included.
            client.meta.events.register("before-send.sqs", count)

        with self.queue() as (url, _):
            self.portable(url, counter)
            counted = dict(calls)  # before the queue is deleted through the same client
        return sum(counted.values()), counted


class RedriveBench:
    """The shared redrive workload on LocalStack queues, and two references that move dead
    letters as ``dead_letter(reason)`` leaves them (body + reason attribute) back to their
    queue, each on a fresh pair of queues."""

    def __init__(self, bench: Bench, count: int) -> None:
        self.bench = bench
        self.count = count
        self.client = bench.client
        self.made: list[str] = []

    @contextlib.contextmanager
    def pair(self) -> Iterator[tuple[str, str, str]]:
        """A queue with a dead-letter queue full of dead letters: the queue's cloudqueue
        URL, its SQS URL and the dead-letter queue's SQS URL."""
        name = f"bench-redrive-{os.getpid()}-{next(_names)}"
        url = f"sqs://{name}?" + urlencode({"region": REGION, "endpoint_url": self.bench.endpoint})
        cloudqueue.declare(url, lease=30, dead_letter_after=3)
        try:
            queue_url = self.client.get_queue_url(QueueName=name)["QueueUrl"]
            dead_url = self.client.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
            reason = {"dead_letter_reason": {"DataType": "String", "StringValue": "bench"}}
            for start in range(0, self.count, 10):
                self.client.send_message_batch(QueueUrl=dead_url, Entries=[
                    {"Id": str(i), "MessageBody": BODY, "MessageAttributes": reason}
                    for i in range(min(10, self.count - start))
                ])
            yield url, queue_url, dead_url
        finally:
            cloudqueue.delete(url)
            cloudqueue.delete(cloudqueue.dead_letter_url(url))

    def timed(self, run: Callable[[str, str], None]) -> float:
        with self.pair() as (_, queue_url, dead_url):
            started = time.perf_counter()
            run(queue_url, dead_url)
            return self.count / (time.perf_counter() - started)

    def boto3_loop(self, queue_url: str, dead_url: str) -> None:
        moved = 0
        while moved < self.count:
            got = self.client.receive_message(
                QueueUrl=dead_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                continue
            self.client.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "MessageBody": m["Body"],
                 "MessageAttributes": m.get("MessageAttributes") or {}}
                for i, m in enumerate(got)
            ])
            self.client.delete_message_batch(QueueUrl=dead_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ])
            moved += len(got)

    def move_task(self, queue_url: str, dead_url: str) -> None:
        def arn(url: str) -> str:
            answer = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            return str(answer["Attributes"]["QueueArn"])

        source = arn(dead_url)
        self.client.start_message_move_task(
            SourceArn=source, DestinationArn=arn(queue_url), MaxNumberOfMessagesPerSecond=500
        )
        while True:
            tasks = self.client.list_message_move_tasks(SourceArn=source)["Results"]
            if tasks and tasks[0]["Status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                assert tasks[0]["Status"] == "COMPLETED", tasks[0]
                return
            time.sleep(0.05)

    def queue(self) -> str:
        """A fresh queue with a dead-letter queue, for the shared workload."""
        name = f"bench-ops-{os.getpid()}-{next(_names)}"
        url = f"sqs://{name}?" + urlencode({"region": REGION, "endpoint_url": self.bench.endpoint})
        cloudqueue.declare(url, lease=30, dead_letter_after=3)
        self.made.append(url)
        return url

    def report(self, repeats: int) -> None:
        try:
            compare("sqs (LocalStack)", self.queue, self.count, repeats)
        finally:
            for url in self.made:
                cloudqueue.delete(url)
                cloudqueue.delete(cloudqueue.dead_letter_url(url))
        print("  (a redrive makes 3 requests per 10 messages: receive, send, delete; a send 1)")
        for name, run in (
            ("boto3 receive + send + delete loop", self.boto3_loop),
            ("SQS StartMessageMoveTask (500/s cap)", self.move_task),
        ):
            print(f"  {name:34} {self.timed(run):10,.0f} msg/s  (reference, one round; "
                  "no provenance, where, limit or dry run)")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redrive-messages", type=int, default=5000)
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if os.environ.get("CLOUDQUEUE_SQS_ENDPOINT"):
            server = LocalStack()
        else:
            venv = Path(os.environ.get("CLOUDQUEUE_LOCALSTACK_VENV") or ".venv-localstack")
            install_localstack(venv)
            server = LocalStack(venv)
        stack.enter_context(server)
        bench = Bench(server.endpoint_url, args.messages)

        total, calls = bench.requests_per_message()
        per_message = total / args.messages
        print(f"API requests for {args.messages:,} messages sent, received and acked: {total} "
              f"({', '.join(f'{name} {n}' for name, n in sorted(calls.items()))})")
        print(f"requests per message: {per_message:.3f}  (bar <= 0.31: "
              f"{'met' if per_message <= 0.31 else 'MISSED'})\n")
        _report.bar("SQS requests per message", per_message, at_most=0.31)
        RedriveBench(bench, args.redrive_messages).report(args.repeat)

        rates = {
            "cloudqueue (sync)": bench.rate(lambda url, _: bench.portable(url), args.repeat),
            "boto3 loop, batched by 10": bench.rate(lambda _, q: bench.boto3_batched(q), args.repeat),
            "boto3 loop, one call per message": bench.rate(lambda _, q: bench.boto3_naive(q), 1),
            "cloudqueue.aio (worker threads)": bench.rate(
                lambda url, _: bench.portable_async(url), args.repeat
            ),
        }
        # aiobotocore pins botocore tightly, so it is not a dependency: installed, it
        # shows what a native asyncio driver could reach against our worker threads.
        aio_baseline = "aiobotocore loop, batched by 10"
        if importlib.util.find_spec("aiobotocore") is not None:
            rates[aio_baseline] = bench.rate(
                lambda _, q: bench.aiobotocore_batched(q), args.repeat
            )
        print(f"{'workload (send + receive + ack)':40} {'msg/s':>10}")
        for name, value in rates.items():
            print(f"{name:40} {value:10,.0f}")
            kind: _report.Kind = (
                "cloudqueue" if name.startswith("cloudqueue")
                else "baseline" if name == "boto3 loop, batched by 10" else "reference"
            )
            _report.figure("sqs (LocalStack)", "send+receive+ack", name, value, kind=kind)
        print()
        portable = rates["cloudqueue (sync)"]
        for label, value, bar in (
            ("cloudqueue vs batched boto3", portable / rates["boto3 loop, batched by 10"], 1.2),
            ("cloudqueue vs naive boto3", portable / rates["boto3 loop, one call per message"], 3.0),
        ):
            print(f"{label:40} {value:8.2f}x  (bar {bar:g}x: {'met' if value >= bar else 'MISSED'})")
            _report.bar(f"SQS {label}", value, at_least=bar)
        if aio_baseline not in rates:
            print("cloudqueue.aio vs aiobotocore: not measured (pip install aiobotocore to compare)")
            return
        async_ratio = rates["cloudqueue.aio (worker threads)"] / rates[aio_baseline]
        print(f"{'cloudqueue.aio vs aiobotocore batched':40} {async_ratio:8.2f}x  (informs the "
              "choice of worker threads over aiobotocore)")


if __name__ == "__main__":
    main()
