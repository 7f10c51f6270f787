"""The Lambda adapter resolves claim checks in SQS records (the event shape from the
Lambda developer guide), in our format and in the AWS extended clients'."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_serverless import sqs_record

import cloudqueue
from cloudqueue import Offload, PayloadUnavailable
from cloudqueue.errors import InvalidArgument
from cloudqueue.offload import AWS_POINTER_CLASS, AWS_SIZE_ATTRIBUTE, open_store
from cloudqueue.offload._pointer import our_pointer
from cloudqueue.serverless import aws_lambda


def offloaded_record(message_id: str, store_dir: Path, payload: bytes) -> dict[str, Any]:
    """The record an SQS queue delivers for a message an offloading producer sent: the
    payload in the store, the pointer and marker as the producer writes them."""
    uri = open_store(f"file://{store_dir}").put(f"payload-{message_id}", payload)
    body, markers = our_pointer(uri, len(payload), hashlib.sha256(payload).hexdigest())
    return sqs_record(message_id, body, attributes={**markers, "kind": "large"})


def test_lambda_hands_the_handler_the_payload_of_our_pointer(tmp_path: Path) -> None:
    payload = os.urandom(200_000)
    seen: dict[str, tuple[bytes, dict[str, str]]] = {}

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen[message.id] = (message.body, message.attributes)

    lambda_handler = aws_lambda(handler, offload=Offload(f"file://{tmp_path}"))
    event = {"Records": [offloaded_record("m1", tmp_path, payload),
                         sqs_record("m2", b"inline")]}
    # The marker a reader without offload would see is the one our producer writes.
    assert json.loads(event["Records"][0]["body"])["size"] == len(payload)
    assert lambda_handler(event, None) == {"batchItemFailures": []}
    assert seen["m1"] == (payload, {"kind": "large"})
    assert seen["m2"][0] == b"inline"


def test_lambda_reads_the_aws_pointer_and_fails_only_records_it_cannot_fetch(
    tmp_path: Path,
) -> None:
    """An AWS extended client's pointer (ExtendedPayloadSize as a Number attribute) is
    recognised; its bucket lies outside this function's file:// location, so that record
    fails with PayloadUnavailable and the others run."""
    errors: list[BaseException] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        try:
            message.body  # noqa: B018
        except PayloadUnavailable as error:
            errors.append(error)
            raise

    aws_body = json.dumps([AWS_POINTER_CLASS, {"s3BucketName": "bucket", "s3Key": "k1"}])
    aws = sqs_record("aws-1", aws_body.encode())
    aws["messageAttributes"][AWS_SIZE_ATTRIBUTE] = {
        "stringValue": "300000", "stringListValues": [], "binaryListValues": [],
        "dataType": "Number",
    }
    lambda_handler = aws_lambda(handler, offload=Offload(f"file://{tmp_path}"))
    result = lambda_handler({"Records": [aws, sqs_record("plain", b"fine")]}, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "aws-1"}]}
    (error,) = errors
    assert "s3://bucket/k1" in str(error) and "outside" in str(error)


def test_lambda_without_offload_never_hands_a_pointer_over_as_a_body(tmp_path: Path) -> None:
    record = offloaded_record("m3", tmp_path, b"needs a store")
    lambda_handler = aws_lambda(lambda message: message.body)
    assert lambda_handler({"Records": [record]}, None) == {
        "batchItemFailures": [{"itemIdentifier": "m3"}]
    }


def test_lambda_refuses_delete_after_ack(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="delete_after_ack"):
        aws_lambda(lambda message: None, offload=Offload(f"file://{tmp_path}",
                                                        delete_after_ack=True))
