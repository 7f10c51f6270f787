"""The user's own boto3 objects (``sdk=SqsSdk(...)``) against LocalStack.

What is observed, never mocked: requests through botocore's event hooks registered on
the user's session or client; whose credentials signed them through LocalStack, which
files a queue under the account a 12-digit access key names; ``close`` through botocore's
``creating-client-class`` event, which boto3 itself uses to extend clients (here: to note
which clients were closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import cloudqueue
import cloudqueue.aio
import cloudqueue.ops
import pytest
from botocore.config import Config
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret
from conftest import sqs_client
from conftest_driver import aws_environment, endpoint_url

from cloudqueue_sqs import SqsSdk

__all__ = ["aws_environment", "endpoint_url"]

#: LocalStack files what a 12-digit access key creates under that account.
ACCOUNT = "111122223333"


def sqs_url(name: str, endpoint: str | None = None) -> str:
    params = {"region": "us-east-1"}
    if endpoint is not None:
        params["endpoint_url"] = endpoint
    return f"sqs://{name}?{urlencode(params)}"


def user_session(secret: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=ACCOUNT, aws_secret_access_key=secret, region_name="us-east-1"
    )


class Requests:
    """The SQS requests a botocore event system sent, by operation, with their
    User-Agent headers."""

    def __init__(self, events: Any, service: str = "sqs") -> None:
        self.operations: list[str] = []
        self.user_agents: list[str] = []
        events.register(f"before-send.{service}", self._sent)

    def _sent(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        self.operations.append(target.rsplit(".", 1)[-1])
        agent = request.headers.get("User-Agent", b"")
        self.user_agents.append(agent.decode() if isinstance(agent, bytes) else str(agent))


@pytest.fixture
def queue(endpoint_url: str) -> Iterator[str]:
    """A queue name; whatever a test created under it in LocalStack's default account
    or in ACCOUNT is deleted afterwards."""
    name = unique_name("cq-sdk")
    yield name
    for client in (sqs_client(endpoint_url), user_session("x").client(
        "sqs", endpoint_url=endpoint_url
    )):
        with contextlib.suppress(client.exceptions.QueueDoesNotExist):
            client.delete_queue(QueueUrl=client.get_queue_url(QueueName=name)["QueueUrl"])


def test_session_and_config_serve_every_call(endpoint_url: str, queue: str) -> None:
    session = user_session(new_secret())
    seen = Requests(session.events)
    sdk = SqsSdk(session=session, config=Config(user_agent_extra="cq-sdk-test/1"))
    url = sqs_url(queue, endpoint_url)

    cloudqueue.declare(url, sdk=sdk)
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(b"first")
        producer.send(b"second")
    assert cloudqueue.ops.stats(url, sdk=sdk).available == 2
    assert sorted(m.body for m in cloudqueue.ops.peek(url, 10, sdk=sdk)) == [b"first", b"second"]
    with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
        received = consumer.receive(max_messages=10, wait=5.0)
        for message in received:
            message.ack()
    assert {m.body for m in received} <= {b"first", b"second"}
    assert cloudqueue.capabilities(url, sdk=sdk).ordering is False
    cloudqueue.purge(url, sdk=sdk)

    # Every request went through the user's session, with the user's config.
    for operation in ("CreateQueue", "SendMessageBatch", "GetQueueAttributes",
                      "ReceiveMessage", "DeleteMessageBatch", "PurgeQueue"):
        assert operation in seen.operations
    assert all("cq-sdk-test/1" in agent for agent in seen.user_agents)
    # ... and was signed with its credentials: the queue is the user's account's, and the
    # environment's credentials (LocalStack's default account) do not find it.
    mine = session.client("sqs", endpoint_url=endpoint_url)
    assert f"/{ACCOUNT}/{queue}" in mine.get_queue_url(QueueName=queue)["QueueUrl"]
    with pytest.raises(cloudqueue.NotFound):
        cloudqueue.ops.stats(url)

    cloudqueue.delete(url, sdk=sdk)
    assert seen.operations[-1] == "DeleteQueue"


def record_closes(session: boto3.Session) -> list[object]:
    """The SQS clients made from ``session`` that were closed, in order. botocore's
    ``creating-client-class`` event (the hook boto3 itself uses to extend clients) adds
    a base class whose ``close`` notes the call, then closes as usual."""
    closed: list[object] = []

    class RecordsClose:
        def close(self) -> None:
            closed.append(self)
            super().close()  # type: ignore[misc]

    def extend(base_classes: list[type], **_: Any) -> None:
        base_classes.insert(0, RecordsClose)

    session.events.register("creating-client-class.sqs", extend)
    return closed


def test_your_client_is_used_and_never_closed(endpoint_url: str, queue: str) -> None:
    session = user_session(new_secret())
    closed = record_closes(session)
    client = session.client("sqs", endpoint_url=endpoint_url)
    seen = Requests(client.meta.events)
    sdk = SqsSdk(sqs_client=client)
    url = sqs_url(queue)  # the client's own endpoint and region apply

    cloudqueue.declare(url, sdk=sdk)
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(b"through your client")
    with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
        assert [m.body for m in consumer.receive(max_messages=1, wait=5.0)] == [
            b"through your client"
        ]
    cloudqueue.delete(url, sdk=sdk)

    assert {"CreateQueue", "SendMessageBatch", "ReceiveMessage", "DeleteQueue"} <= set(
        seen.operations
    )
    assert closed == []


def test_clients_built_on_your_session_are_closed_by_cloudqueue(
    endpoint_url: str, queue: str
) -> None:
    session = user_session(new_secret())
    closed = record_closes(session)
    url = sqs_url(queue, endpoint_url)
    sdk = SqsSdk(session=session)

    cloudqueue.declare(url, sdk=sdk)
    assert len(closed) == 1  # the provisioning call's client, when it returned
    producer = cloudqueue.open_producer(url, sdk=sdk)
    producer.send(b"x")
    assert len(closed) == 1  # the producer's client lives while the producer does
    producer.close()
    assert len(closed) == 2
    cloudqueue.delete(url, sdk=sdk)
    assert len(closed) == 3


def test_asyncio_api_uses_the_same_objects(endpoint_url: str, queue: str) -> None:
    session = user_session(new_secret())
    seen = Requests(session.events)
    sdk = SqsSdk(session=session)
    url = sqs_url(queue, endpoint_url)
    cloudqueue.declare(url, sdk=sdk)

    async def round_trip() -> list[bytes]:
        async with cloudqueue.aio.open_producer(url, sdk=sdk) as producer:
            await producer.send(b"async")
        async with cloudqueue.aio.open_consumer(url, sdk=sdk) as consumer:
            messages = await consumer.receive(max_messages=1, wait=5.0)
            for message in messages:
                await message.ack()
            return [m.body for m in messages]

    assert asyncio.run(round_trip()) == [b"async"]
    assert {"SendMessageBatch", "ReceiveMessage", "DeleteMessageBatch"} <= set(seen.operations)
    cloudqueue.delete(url, sdk=sdk)


def test_wrong_objects_are_refused_naming_the_expected_types() -> None:
    sns = boto3.client("sns", region_name="us-east-1")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"session": "a session"}, "SqsSdk(session=...) must be a boto3.Session, not builtins.str"),
        ({"config": {"retries": 1}}, "must be a botocore.config.Config, not builtins.dict"),
        ({"sqs_client": object()}, "must be a boto3 client made with client('sqs')"),
        ({"sqs_client": sns}, "made with client('sqs'), not one made with client('sns')"),
    ]
    for fields, expected in cases:
        with pytest.raises(cloudqueue.InvalidArgument, match=re.escape(expected)):
            SqsSdk(**fields)
    expected = "must be a cloudqueue_sqs.SqsSdk, not boto3.session.Session"
    with pytest.raises(cloudqueue.InvalidArgument, match=re.escape(expected)):
        cloudqueue.capabilities("sqs://orders", sdk=boto3.Session())  # type: ignore[arg-type]
    with pytest.raises(cloudqueue.InvalidArgument, match="profile parameter and SqsSdk"):
        cloudqueue.capabilities("sqs://orders?profile=dev", sdk=SqsSdk(session=boto3.Session()))


def test_secrets_inside_the_objects_never_show(
    endpoint_url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    log_everything(caplog)
    secret, token = new_secret(), new_secret()
    session = boto3.Session(
        aws_access_key_id=ACCOUNT, aws_secret_access_key=secret, aws_session_token=token,
        region_name="us-east-1",
    )
    client = session.client("sqs", endpoint_url=endpoint_url)
    exposure = Exposure(secret, token)
    for sdk in (SqsSdk(session=session, config=Config()), SqsSdk(sqs_client=client)):
        exposure.objects(sdk)
        url = sqs_url(unique_name("cq-missing"), endpoint_url)
        with pytest.raises(cloudqueue.NotFound) as missing:
            cloudqueue.ops.stats(url, sdk=sdk)
        exposure.error(missing.value)
        with cloudqueue.open_producer(url, sdk=sdk) as producer:
            exposure.objects(producer)
    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())
