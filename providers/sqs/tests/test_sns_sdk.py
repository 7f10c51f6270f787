"""The user's own boto3 objects for ``sns://`` URLs against LocalStack: one SqsSdk serves
the topic (SNS) and the subscription's queue (SQS). Observed as in test_sqs_sdk.py: the
requests through botocore's before-send hooks, the signer through the account LocalStack
files the topic under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import cloudqueue
import cloudqueue.ops
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.secrets import new_secret
from conftest_driver import aws_environment, endpoint_url

from cloudqueue_sqs import SqsSdk

__all__ = ["aws_environment", "endpoint_url"]

ACCOUNT = "444455556666"


def sns_url(topic: str, endpoint: str | None, **params: str) -> str:
    query = {"region": "us-east-1", **params}
    if endpoint is not None:
        query["endpoint_url"] = endpoint
    return f"sns://{topic}?{urlencode(query)}"


@pytest.fixture
def session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=ACCOUNT, aws_secret_access_key=new_secret(), region_name="us-east-1"
    )


@pytest.fixture
def topic(endpoint_url: str, session: boto3.Session) -> Iterator[str]:
    name = unique_name("cq-sdk-t")
    yield name
    with contextlib.suppress(cloudqueue.NotFound):
        cloudqueue.delete(sns_url(name, endpoint_url), sdk=SqsSdk(session=session))


def operations(events: Any, service: str) -> list[str]:
    seen: list[str] = []

    def sent(request: Any, **_: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        # SNS speaks the query protocol (Action=...), SQS JSON (X-Amz-Target).
        action = next((p[7:] for p in body.split("&") if p.startswith("Action=")), None)
        seen.append(action or target.rsplit(".", 1)[-1])

    events.register(f"before-send.{service}", sent)
    return seen


def test_one_bundle_serves_topic_and_subscription(
    endpoint_url: str, session: boto3.Session, topic: str
) -> None:
    sns_calls = operations(session.events, "sns")
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    sqs_calls = operations(sqs.meta.events, "sqs")
    sdk = SqsSdk(session=session, sqs_client=sqs)
    subscription = sns_url(topic, endpoint_url, subscription="billing")

    cloudqueue.declare(subscription, sdk=sdk)
    with cloudqueue.open_producer(sns_url(topic, endpoint_url), sdk=sdk) as producer:
        producer.send(b"invoice")
    with cloudqueue.open_consumer(subscription, sdk=sdk) as consumer:
        received = consumer.receive(max_messages=1, wait=5.0)
        for message in received:
            message.ack()
    assert [m.body for m in received] == [b"invoice"]
    assert cloudqueue.ops.stats(subscription, sdk=sdk).available == 0

    assert {"CreateTopic", "Subscribe", "PublishBatch"} <= set(sns_calls)
    assert {"CreateQueue", "ReceiveMessage", "DeleteMessageBatch"} <= set(sqs_calls)
    # The session's credentials signed: the topic is in its account.
    arns = [t["TopicArn"] for t in session.client("sns", endpoint_url=endpoint_url)
            .list_topics()["Topics"]]
    assert f"arn:aws:sns:us-east-1:{ACCOUNT}:{topic}" in arns


def test_a_ready_sns_client_alone_needs_the_account(
    endpoint_url: str, session: boto3.Session, topic: str
) -> None:
    sns = session.client("sns", endpoint_url=endpoint_url)
    calls = operations(sns.meta.events, "sns")
    alone = SqsSdk(sns_client=sns)
    with pytest.raises(cloudqueue.InvalidArgument, match="add account=<12 digits>"):
        cloudqueue.declare(sns_url(topic, None), sdk=alone)

    url = sns_url(topic, None, account=ACCOUNT)  # the client's own endpoint applies
    cloudqueue.declare(url, sdk=alone)
    with cloudqueue.open_producer(url, sdk=alone) as producer:
        producer.send(b"x")
    assert {"CreateTopic", "PublishBatch"} <= set(calls)
