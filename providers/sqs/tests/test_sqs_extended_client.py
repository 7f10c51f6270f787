"""Interop with AWS's own ``amazon-sqs-extended-client`` on LocalStack, both ways.

The AWS client replaces ``boto3.Session`` for the whole process when imported, so it runs
in a child process (:data:`_AWS_CLIENT`) and never touches this one. Its payloads are text
(it decodes what it reads from S3 as UTF-8), so the bodies here are text too, with
multi-byte characters so that sizes are counted in bytes, not characters.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import cloudqueue
import pytest
from cloudqueue.testing.contract import collect
from conftest_driver import aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]

#: The AWS client's side: ``send QUEUE_URL BUCKET PAYLOAD_FILE LEGACY`` prints the message
#: id; ``receive QUEUE_URL BUCKET COUNT OUT_DIR`` writes each body to OUT_DIR/<id> and
#: prints the ids and the attributes it was left with, then deletes the messages.
_AWS_CLIENT = r"""
import json, sys
from pathlib import Path
import boto3
import sqs_extended_client  # noqa: F401 - importing it patches boto3.Session

command, queue_url, bucket = sys.argv[1:4]
sqs = boto3.Session().client("sqs")
sqs.large_payload_support = bucket
if command == "send":
    sqs.use_legacy_attribute = sys.argv[5] == "legacy"
    body = Path(sys.argv[4]).read_text(encoding="utf-8")
    sent = sqs.send_message(
        QueueUrl=queue_url, MessageBody=body,
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "aws-client"}},
    )
    print(json.dumps({"id": sent["MessageId"]}))
else:
    count, out = int(sys.argv[4]), Path(sys.argv[5])
    got = []
    for _ in range(30):
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        )
        for message in answer.get("Messages", []):
            (out / message["MessageId"]).write_text(message["Body"], encoding="utf-8")
            attributes = {
                name: value.get("StringValue")
                for name, value in message.get("MessageAttributes", {}).items()
            }
            got.append({"id": message["MessageId"], "attributes": attributes})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(got) >= count:
            break
    print(json.dumps(got))
"""

#: Above the AWS client's fixed 256 KiB threshold: it offloads these.
_OVER_AWS_THRESHOLD = 300_000
#: Above SQS's 1 MiB limit, cloudqueue's default threshold on SQS: it offloads these.
_OVER_SQS_LIMIT = 1_100_000


def _text_payload(characters: int) -> str:
    # Two bytes per "é" in UTF-8: sizes are counted in bytes, not characters.
    alphabet = "abcdefghijklmnopqrstuvwxyz é\u00e9"
    return "".join(random.choices(alphabet, k=characters))


@pytest.fixture
def bucket(endpoint_url: str) -> str:
    name = f"cq-extended-{uuid.uuid4().hex[:10]}"
    _s3(endpoint_url).create_bucket(Bucket=name)
    return name


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def queue(endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A fresh queue: its cloudqueue URL and its SQS URL. cloudqueue's store finds S3
    through ``AWS_ENDPOINT_URL_S3``, as on AWS it would find it through the default chain."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"cq-extended-{uuid.uuid4().hex[:10]}"
    url = f"sqs://{name}?" + urlencode({"region": "us-east-1", "endpoint_url": endpoint_url})
    cloudqueue.declare(url, lease=30)
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    yield url, sqs.get_queue_url(QueueName=name)["QueueUrl"]
    cloudqueue.delete(url)


def _aws_client(endpoint: str, *arguments: str) -> Any:
    environment = {
        **os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", _AWS_CLIENT, *arguments], env=environment,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _send_with_aws_client(
    endpoint: str, queue_url: str, bucket: str, body: str, tmp_path: Path, *, legacy: bool
) -> str:
    payload_file = tmp_path / "payload.txt"
    payload_file.write_text(body, encoding="utf-8")
    sent = _aws_client(
        endpoint, "send", queue_url, bucket, str(payload_file), "legacy" if legacy else "current"
    )
    return str(sent["id"])


def _raw_message(endpoint: str, queue_url: str) -> dict[str, Any]:
    """The message as SQS holds it (the pointer), left in the queue."""
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    answer = sqs.receive_message(
        QueueUrl=queue_url, WaitTimeSeconds=5, MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    )
    (message,) = answer["Messages"]
    return dict(message)


@pytest.mark.parametrize("legacy", [False, True], ids=["ExtendedPayloadSize", "SQSLargePayloadSize"])
def test_sent_by_the_aws_client_is_received_whole(
    endpoint_url: str, queue: tuple[str, str], bucket: str, tmp_path: Path, legacy: bool
) -> None:
    url, queue_url = queue
    body = _text_payload(_OVER_AWS_THRESHOLD)
    sent_id = _send_with_aws_client(endpoint_url, queue_url, bucket, body, tmp_path, legacy=legacy)
    raw = _raw_message(endpoint_url, queue_url)
    marker = "SQSLargePayloadSize" if legacy else "ExtendedPayloadSize"
    assert raw["MessageAttributes"][marker]["StringValue"] == str(len(body.encode()))
    # The legacy attribute comes with the Java client's legacy class name.
    pointer_class = json.loads(raw["Body"])[0]
    assert pointer_class == (
        "com.amazon.sqs.javamessaging.MessageS3Pointer" if legacy
        else "software.amazon.payloadoffloading.PayloadS3Pointer"
    )
    # The AWS client puts objects at the bucket's root: the consumer's location is the bucket.
    offload = cloudqueue.Offload(f"s3://{bucket}")
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        (message,) = collect(consumer, 1, timeout=30)
    assert message.id == sent_id
    assert message.text() == body
    assert message.attributes == {"origin": "aws-client"}, "the size marker is not the user's"


def test_sent_by_cloudqueue_is_received_whole_by_the_aws_client(
    endpoint_url: str, queue: tuple[str, str], bucket: str, tmp_path: Path
) -> None:
    url, queue_url = queue
    body = _text_payload(_OVER_SQS_LIMIT)
    with cloudqueue.open_producer(url, offload=cloudqueue.Offload(f"s3://{bucket}/app")) as producer:
        sent_id = producer.send(cloudqueue.Message(body, attributes={"origin": "cloudqueue"}))
    raw = _raw_message(endpoint_url, queue_url)
    pointer_class, pointer = json.loads(raw["Body"])
    assert pointer_class == "software.amazon.payloadoffloading.PayloadS3Pointer"
    assert pointer["s3BucketName"] == bucket and pointer["s3Key"].startswith("app/")
    assert raw["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == str(
        len(body.encode())
    )
    out = tmp_path / "received"
    out.mkdir()
    (got,) = _aws_client(endpoint_url, "receive", queue_url, bucket, "1", str(out))
    assert got["id"] == sent_id
    assert (out / sent_id).read_text(encoding="utf-8") == body
    assert got["attributes"].get("origin") == "cloudqueue"
    assert "ExtendedPayloadSize" not in got["attributes"]  # the AWS client removed it: it knew it
