"""Large payloads by claim check on LocalStack: 1 MB messages through ``offload=s3://...``
vs a hand-written boto3 loop that uploads each payload to S3 and sends the pointer.

Run: ``python bench/bench_offload.py [--messages N] [--repeat R]``. Starts LocalStack from
``$CLOUDQUEUE_LOCALSTACK_VENV`` (default ``.venv-localstack``, installed if missing) unless
``$CLOUDQUEUE_SQS_ENDPOINT`` names a running one. Both workloads run in this process, one
after the other, each on a fresh queue and S3 prefix, and each sends N messages, then
receives all of them, reads every payload whole and acks (deletes) the messages.

The hand-written loop is what a careful user writes without a library: for each batch of
10, upload the 10 payloads one after the other, send the 10 pointers in one request; on
receive, fetch each payload, then delete the 10 messages in one request. Payload objects
are kept by both (the default of cloudqueue and of the AWS extended client).

Bar (issue 16): cloudqueue >= 0.9x the hand-written loop, in messages (and MB) per second.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import _report
import boto3  # type: ignore[import-untyped]
from cloudqueue_sqs.testing import LocalStack, install_localstack

import cloudqueue

REGION = "us-east-1"
PAYLOAD_BYTES = 1_000_000
#: The AWS extended clients' pointer class: the hand-written loop speaks the same format.
POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
_names = itertools.count()
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


class Bench:
    def __init__(self, endpoint: str, count: int) -> None:
        self.endpoint = endpoint
        self.count = count
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint  # cloudqueue's store reads boto3's config
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        self.bucket = f"bench-offload-{uuid.uuid4().hex[:8]}"
        self.s3.create_bucket(Bucket=self.bucket)
        # One payload for every message: generating 1 MB of random bytes per message
        # would cost both workloads the same and only blur the comparison.
        self.payload = os.urandom(PAYLOAD_BYTES)

    @contextlib.contextmanager
    def queue(self) -> Iterator[tuple[str, str, str]]:
        """A fresh queue: its cloudqueue URL, its SQS URL and a fresh S3 prefix."""
        name = f"bench-offload-{os.getpid()}-{next(_names)}"
        url = f"sqs://{name}?" + urlencode({"region": REGION, "endpoint_url": self.endpoint})
        cloudqueue.declare(url, lease=60)
        try:
            yield url, self.sqs.get_queue_url(QueueName=name)["QueueUrl"], name
        finally:
            cloudqueue.delete(url)

    # -- cloudqueue --------------------------------------------------------------------

    def portable(self, url: str, prefix: str) -> None:
        offload = cloudqueue.Offload(f"s3://{self.bucket}/{prefix}")
        with cloudqueue.open_producer(url, offload=offload) as producer, \
                cloudqueue.open_consumer(url, offload=offload, max_in_flight=20) as consumer:
            for start in range(0, self.count, 10):
                producer.send_batch(
                    [cloudqueue.Message(self.payload) for _ in range(min(10, self.count - start))]
                )
            received = 0
            while received < self.count:
                for message in consumer.receive(max_messages=10, wait=1.0):
                    assert len(message.body) == PAYLOAD_BYTES
                    message.ack()
                    received += 1

    # -- the hand-written loop ------------------------------------------------------------

    def boto3_loop(self, queue_url: str, prefix: str) -> None:
        sqs, s3, bucket = self.sqs, self.s3, self.bucket
        size = str(len(self.payload))
        for start in range(0, self.count, 10):
            entries = []
            for index in range(min(10, self.count - start)):
                key = f"{prefix}/{uuid.uuid4().hex}"
                s3.put_object(Bucket=bucket, Key=key, Body=self.payload)
                entries.append({
                    "Id": str(index),
                    "MessageBody": json.dumps(
                        [POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}]
                    ),
                    "MessageAttributes": {
                        "ExtendedPayloadSize": {"DataType": "Number", "StringValue": size}
                    },
                })
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        received = 0
        while received < self.count:
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            for message in messages:
                pointer = json.loads(message["Body"])[1]
                body = s3.get_object(Bucket=pointer["s3BucketName"], Key=pointer["s3Key"])
                assert len(body["Body"].read()) == PAYLOAD_BYTES
            if messages:
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ])
            received += len(messages)

    # -- measuring ------------------------------------------------------------------------

    def rate(self, run: Callable[[str, str, str], None], repeat: int) -> float:
        """Messages per second (sent, received whole and acked), best of ``repeat`` runs."""
        best = 0.0
        for _ in range(repeat):
            with self.queue() as (url, queue_url, prefix):
                started = time.perf_counter()
                run(url, queue_url, prefix)
                best = max(best, self.count / (time.perf_counter() - started))
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
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

        workloads: dict[str, Callable[[str, str, str], None]] = {
            "cloudqueue offload=s3:// (sync)": lambda url, _, prefix: bench.portable(url, prefix),
            "boto3: put_object + pointer loop": lambda _, queue_url, prefix: bench.boto3_loop(
                queue_url, prefix
            ),
        }
        # Alternate the two, so that a LocalStack slowing down as its store fills up
        # weighs on both alike.
        rates = dict.fromkeys(workloads, 0.0)
        for _ in range(args.repeat):
            for name, run in workloads.items():
                rates[name] = max(rates[name], bench.rate(run, 1))
        megabytes = PAYLOAD_BYTES / 1_000_000
        print(f"{args.messages} messages of {PAYLOAD_BYTES:,} bytes, best of {args.repeat}\n")
        print(f"{'workload (send + receive whole + ack)':40} {'msg/s':>8} {'MB/s':>8}")
        for name, value in rates.items():
            print(f"{name:40} {value:8.1f} {value * megabytes:8.1f}")
        ratio = rates["cloudqueue offload=s3:// (sync)"] / rates["boto3: put_object + pointer loop"]
        workload = "1 MB messages by claim check (S3)"
        for name, value in rates.items():
            kind: _report.Kind = "cloudqueue" if name.startswith("cloudqueue") else "baseline"
            _report.figure("sqs", workload, name, value, kind=kind)
        _report.bar("sqs: offload vs hand-written S3 + pointer loop", ratio, at_least=0.9)
        print(f"\n{'cloudqueue vs hand-written loop':40} {ratio:8.2f}x  "
              f"(bar 0.9x: {'met' if ratio >= 0.9 else 'MISSED'})")


if __name__ == "__main__":
    main()
