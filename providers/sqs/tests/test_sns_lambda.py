"""The Lambda adapter end to end on LocalStack: a message published to an SNS topic the
way the SNS provider publishes it (the SQS codec's body and attributes, plus
``cloudqueue.id``), delivered to an SQS subscription with raw delivery on and off,
received with boto3 and turned into the event records Lambda would build from it."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import cloudqueue
import pytest
from cloudqueue.serverless import HandlerFailed, aws_lambda
from cloudqueue.testing.contract import unique_name
from cloudqueue.wire import MESSAGE_ID_ATTRIBUTE
from conftest_driver import aws_environment, endpoint_url

from cloudqueue_sqs import _codec
from cloudqueue_sqs.testing import LocalStack

__all__ = ["aws_environment", "endpoint_url"]

REGION = "us-east-1"
BODY = b"\x00\xff binary order \x01"
ATTRIBUTES = {"kind": "order", "note": "", "control": "a\x01b", "text": "caf\u00e9"}


def client(service: str, localstack: LocalStack) -> Any:
    return boto3.client(service, endpoint_url=localstack.endpoint_url, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


@dataclass(frozen=True)
class Subscription:
    sns: Any
    sqs: Any
    topic_arn: str
    subscription_arn: str
    queue_url: str
    queue_arn: str


@pytest.fixture(params=[True, False], ids=["raw", "envelope"])
def subscription(request: pytest.FixtureRequest, localstack: LocalStack) -> Iterator[Subscription]:
    """A fresh topic with one SQS subscription, raw message delivery on or off."""
    sns, sqs = client("sns", localstack), client("sqs", localstack)
    topic_arn = sns.create_topic(Name=unique_name("lambda-topic"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_name("lambda-queue"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    subscription_arn = sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True,
        Attributes={"RawMessageDelivery": "true" if request.param else "false"},
    )["SubscriptionArn"]
    try:
        yield Subscription(sns, sqs, topic_arn, subscription_arn, queue_url, queue_arn)
    finally:
        sns.delete_topic(TopicArn=topic_arn)
        sqs.delete_queue(QueueUrl=queue_url)


def publish_as_the_provider(subscription: Subscription, body: bytes, attributes: dict[str, str],
                            cloudqueue_id: str) -> None:
    """One message as the SNS provider publishes it: the SQS codec's entry, plus the id."""
    entry = _codec.encode_entry("0", cloudqueue.Message(body, attributes=attributes),
                                fifo=False, content_based_dedup=False)
    message_attributes = dict(entry.get("MessageAttributes", {}))
    message_attributes[MESSAGE_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": cloudqueue_id}
    subscription.sns.publish(TopicArn=subscription.topic_arn, Message=entry["MessageBody"],
                             MessageAttributes=message_attributes)


def receive_one(subscription: Subscription) -> dict[str, Any]:
    for _ in range(10):  # long polls; LocalStack delivers from SNS asynchronously
        got = subscription.sqs.receive_message(
            QueueUrl=subscription.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=2,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if got:
            return dict(got[0])
    raise AssertionError("the subscription's queue received nothing within 20 s of long polls")


def lambda_sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The record the Lambda SQS event source builds from a received message: camelCase
    keys, binary attribute values as base64 text."""
    attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [],
                                     "dataType": value["DataType"]}
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        attributes[name] = attribute
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


Seen = tuple[str, bytes, dict[str, str]]


def run(event: dict[str, Any], *, fail: bool = False) -> tuple[list[Seen], Any]:
    seen: list[Seen] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.id, message.body, message.attributes))
        if fail:
            raise RuntimeError("out of stock")

    return seen, aws_lambda(handler)(event, None)


def test_a_published_message_reaches_the_handler_whole_with_the_id_send_returned(
    subscription: Subscription,
) -> None:
    sent_id = uuid.uuid4().hex
    publish_as_the_provider(subscription, BODY, ATTRIBUTES, sent_id)
    record = lambda_sqs_record(receive_one(subscription), subscription.queue_arn)

    seen, response = run({"Records": [record]})
    assert seen == [(sent_id, BODY, ATTRIBUTES)]
    assert response == {"batchItemFailures": []}

    # A failure is reported by the record's own SQS message id, which Lambda settles by.
    seen, response = run({"Records": [record]}, fail=True)
    assert [message_id for message_id, _, _ in seen] == [sent_id]
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


def test_a_plain_boto3_publish_reads_as_its_text_and_attributes(subscription: Subscription) -> None:
    published = subscription.sns.publish(
        TopicArn=subscription.topic_arn, Message='{"order": 7}',
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"},
                           "count": {"DataType": "Number", "StringValue": "3"},
                           "blob": {"DataType": "Binary", "BinaryValue": b"\x01\x02"}},
    )
    message = receive_one(subscription)
    seen, response = run({"Records": [lambda_sqs_record(message, subscription.queue_arn)]})
    assert response == {"batchItemFailures": []}
    # No cloudqueue.id: the queue's own id with raw delivery, the SNS MessageId in an envelope.
    raw = "Type" not in json.loads(message["Body"])
    expected_id = message["MessageId"] if raw else published["MessageId"]
    assert seen == [(expected_id, b'{"order": 7}', {"kind": "order", "count": "3", "blob": "AQI="})]


def test_the_same_notification_as_an_sns_trigger_record_decodes_the_same(localstack: LocalStack) -> None:
    """An SNS trigger hands the notification SQS got without raw delivery; built from it, the
    SNS record decodes to the same message, and a failure raises for Lambda to retry."""
    sns, sqs = client("sns", localstack), client("sqs", localstack)
    topic_arn = sns.create_topic(Name=unique_name("lambda-topic"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_name("lambda-queue"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    subscription_arn = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                     ReturnSubscriptionArn=True)["SubscriptionArn"]
    envelope_subscription = Subscription(sns, sqs, topic_arn, subscription_arn, queue_url, queue_arn)
    try:
        sent_id = uuid.uuid4().hex
        publish_as_the_provider(envelope_subscription, BODY, ATTRIBUTES, sent_id)
        notification = json.loads(receive_one(envelope_subscription)["Body"])
    finally:
        sns.delete_topic(TopicArn=topic_arn)
        sqs.delete_queue(QueueUrl=queue_url)
    event = {"Records": [{"EventVersion": "1.0", "EventSubscriptionArn": subscription_arn,
                          "EventSource": "aws:sns", "Sns": notification}]}

    seen, response = run(event)
    assert response is None and seen == [(sent_id, BODY, ATTRIBUTES)]
    with pytest.raises(HandlerFailed) as caught:
        run(event, fail=True)
    assert caught.value.message_ids == [sent_id]


def test_a_message_sent_to_an_sns_url_reaches_the_adapter_with_the_id_send_returned(
    endpoint_url: str, localstack: LocalStack,
) -> None:
    topic = unique_name("lambda-orders")
    query = urlencode({"region": REGION, "endpoint_url": endpoint_url})
    subscription_url = f"sns://{topic}?subscription=billing&{query}"
    cloudqueue.declare(subscription_url)
    try:
        with cloudqueue.open_producer(f"sns://{topic}?{query}") as producer:
            sent_id = producer.send(cloudqueue.Message(BODY, attributes=ATTRIBUTES))
        sqs = client("sqs", localstack)
        queue_url = sqs.get_queue_url(QueueName=f"{topic}-billing")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        queue = Subscription(None, sqs, "", "", queue_url, queue_arn)
        record = lambda_sqs_record(receive_one(queue), queue_arn)
    finally:
        with contextlib.suppress(cloudqueue.QueueError):
            cloudqueue.delete(f"sns://{topic}?{query}")
    seen, response = run({"Records": [record]})
    assert seen == [(sent_id, BODY, ATTRIBUTES)] and response == {"batchItemFailures": []}
