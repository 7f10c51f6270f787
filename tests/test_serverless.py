"""The serverless adapters, fed the event shapes the clouds document."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import azure.functions as func
import httpx
import pytest
import uvicorn
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter

import cloudqueue
from cloudqueue.serverless import (
    HandlerFailed,
    MalformedEvent,
    aws_lambda,
    azure_functions,
    pubsub_push,
    pubsub_push_wsgi,
)
from cloudqueue.wire import encode_sqs_attribute, encode_sqs_body

# -- AWS Lambda, SQS trigger (event shape from the Lambda developer guide) --------------


def sqs_record(message_id: str, body: bytes, *, attempt: int = 1, group: str | None = None,
               attributes: dict[str, str] | None = None, fifo: bool = False) -> dict[str, Any]:
    text, markers = encode_sqs_body(body)
    typed = {name: encode_sqs_attribute(value) for name, value in (attributes or {}).items()}
    typed.update((name, ("String", value)) for name, value in markers.items())
    message_attributes = {
        name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": kind}
        for name, (kind, value) in typed.items()
    }
    system = {"ApproximateReceiveCount": str(attempt), "SentTimestamp": "1545082649183",
              "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"}
    if group is not None:
        system.update(MessageGroupId=group, SequenceNumber="18849496460467696128",
                      MessageDeduplicationId="1")
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...{message_id}",
        "body": text,
        "attributes": system,
        "messageAttributes": message_attributes,
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue" + (".fifo" if fifo else ""),
        "awsRegion": "us-east-2",
    }


def test_lambda_decodes_records_like_the_sqs_provider_and_reports_partial_failure() -> None:
    seen: list[tuple[str, bytes, dict[str, str], int | None]] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.id, message.body, message.attributes, message.delivery_attempt))
        if message.body == b"fail":
            raise RuntimeError("no stock")

    event = {"Records": [
        sqs_record("m1", b"hello", attributes={"kind": "order", "note": "", "raw": "a\x01b"}),
        sqs_record("m2", b"\x00\xffbinary", attempt=3),
        sqs_record("m3", b"fail"),
        sqs_record("m4", b""),
    ]}
    response = aws_lambda(handler)(event, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    assert seen == [("m1", b"hello", {"kind": "order", "note": "", "raw": "a\x01b"}, 1),
                    ("m2", b"\x00\xffbinary", {}, 3),
                    ("m3", b"fail", {}, 1), ("m4", b"", {}, 1)]


def test_lambda_reports_made_up_fifo_ids_as_none_like_the_sqs_provider() -> None:
    seen: list[tuple[str | None, str | None]] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.ordering_key, message.deduplication_id))

    own = sqs_record("m1", b"a", group="customer-7", fifo=True)
    own["attributes"]["MessageDeduplicationId"] = "order-1"
    made_up = sqs_record("m2", b"b", group="cloudqueue.3f2a", fifo=True)
    made_up["attributes"]["MessageDeduplicationId"] = "cloudqueue.9c1d"
    assert aws_lambda(handler)({"Records": [own, made_up]}, None) == {"batchItemFailures": []}
    assert seen == [("customer-7", "order-1"), (None, None)]


def test_lambda_fifo_stops_at_the_first_failure() -> None:
    ran: list[str] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        ran.append(message.id)
        assert message.ordering_key == "customer-7"
        if message.id == "f2":
            raise ValueError("bad")

    event = {"Records": [sqs_record(f"f{i}", b"x", group="customer-7", fifo=True) for i in range(1, 5)]}
    response = aws_lambda(handler)(event, None)
    assert ran == ["f1", "f2"]
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ("f2", "f3", "f4")]}


def test_lambda_runs_coroutine_handlers_concurrently() -> None:
    async def handler(message: cloudqueue.AsyncReceivedMessage) -> None:
        await asyncio.sleep(0.2)
        if message.text() == "bad":
            raise RuntimeError("x")

    event = {"Records": [sqs_record(f"a{i}", b"bad" if i == 3 else b"ok") for i in range(10)]}
    started = time.monotonic()
    response = aws_lambda(handler)(event, None)
    assert time.monotonic() - started < 1.0  # ten 0.2 s handlers, run together
    assert response == {"batchItemFailures": [{"itemIdentifier": "a3"}]}


def test_lambda_refuses_what_the_trigger_cannot_do_and_honours_handler_settlements() -> None:
    errors: dict[str, str] = {}

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        for name, call in (("dead_letter", lambda: message.dead_letter("x")),
                           ("extend", lambda: message.extend(30)),
                           ("nack_delay", lambda: message.nack(delay=5))):
            with pytest.raises(cloudqueue.Unsupported) as caught:
                call()
            errors[name] = str(caught.value)
        if message.id == "n":
            message.nack()  # reported failed without raising
        else:
            message.ack()
            raise RuntimeError("after ack: still done")

    response = aws_lambda(handler)({"Records": [sqs_record("n", b"1"), sqs_record("a", b"2")]}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "n"}]}
    assert "redrive policy" in errors["dead_letter"] and "visibility timeout" in errors["extend"]
    assert "ChangeMessageVisibility" in errors["nack_delay"] or "SQS API" in errors["nack_delay"]


@pytest.mark.parametrize("event", [
    {}, {"Records": "nope"}, {"Records": [42]},
    {"Records": [{**sqs_record("x", b"1"), "eventSource": "aws:kinesis"}]},
    {"Records": [{k: v for k, v in sqs_record("x", b"1").items() if k != "messageId"}]},
])
def test_lambda_malformed_events_fail_the_whole_invocation(event: Any) -> None:
    ran: list[object] = []
    with pytest.raises(MalformedEvent):
        aws_lambda(ran.append)(event, None)
    assert ran == []


def test_lambda_reports_an_undecodable_record_without_running_it() -> None:
    ran: list[str] = []
    broken = sqs_record("b", b"\x00")
    broken["body"] = "not base64!"
    response = aws_lambda(lambda m: ran.append(m.id))({"Records": [sqs_record("g", b"ok"), broken]}, None)
    assert ran == ["g"] and response == {"batchItemFailures": [{"itemIdentifier": "b"}]}


# -- Azure Functions, Service Bus trigger (decoded by azure-functions' own converter) ---


def sb_metadata(
    index: int, *, delivery_count: int = 1, properties: dict[str, Any] | None = None,
    session: str | None = None,
) -> dict[str, meta.Datum]:
    properties = {"kind": "order", "priority": 2} if properties is None else properties
    metadata = {
        "MessageId": meta.Datum(f"sb-{index}", "string"),
        "DeliveryCount": meta.Datum(delivery_count, "int"),
        "EnqueuedTimeUtc": meta.Datum("2024-05-01T10:00:00.123Z", "string"),
        "LockToken": meta.Datum("b7a8b2bb-6b4f-4f0c-9c6d-0f4e2a1a1111", "string"),
        "SequenceNumber": meta.Datum(index, "int"),
        "ApplicationProperties": meta.Datum(json.dumps(properties), "json"),
        "UserProperties": meta.Datum(json.dumps(properties), "json"),
    }
    if session is not None:
        metadata["SessionId"] = meta.Datum(session, "string")
    return metadata


def sb_message(body: bytes, index: int = 1, delivery_count: int = 1, **extra: Any) -> func.ServiceBusMessage:
    message = ServiceBusMessageInConverter.decode(
        meta.Datum(body, "bytes"),
        trigger_metadata=sb_metadata(index, delivery_count=delivery_count, **extra),
    )
    assert isinstance(message, func.ServiceBusMessage)
    return message


def test_azure_functions_reads_keys_as_the_service_bus_provider_does() -> None:
    seen: list[tuple[str | None, str | None, dict[str, str]]] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.ordering_key, message.deduplication_id, message.attributes))

    function = azure_functions(handler)
    function(sb_message(b"a", 1, properties={"kind": "x", "cloudqueue.deduplication_id": "order-1"},
                        session="customer-7"))
    function(sb_message(b"b", 2, properties={"kind": "y"}, session="cloudqueue.default"))
    assert seen == [("customer-7", "order-1", {"kind": "x"}), (None, None, {"kind": "y"})]


def test_azure_functions_single_message_completes_or_abandons() -> None:
    seen: list[tuple[str, bytes, dict[str, str], int | None]] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.id, message.body, message.attributes, message.delivery_attempt))
        assert message.enqueued_at is not None and message.as_(func.ServiceBusMessage) is not None
        if message.body == b"bad":
            raise KeyError("sku")

    function = azure_functions(handler)
    function(sb_message(b"\x01good", 1, delivery_count=2))
    with pytest.raises(HandlerFailed, match="sb-5") as failure:
        function(sb_message(b"bad", 5))
    assert isinstance(failure.value.__cause__, KeyError)
    assert seen[0] == ("sb-1", b"\x01good", {"kind": "order", "priority": "2"}, 2)


def test_azure_functions_batch_raises_when_any_message_failed() -> None:
    done: list[str] = []

    async def handler(message: cloudqueue.AsyncReceivedMessage) -> None:
        if message.text() == "bad":
            with pytest.raises(cloudqueue.Unsupported, match="dead-letter"):
                await message.dead_letter("x")
            raise RuntimeError("bad one")
        done.append(message.id)

    function = azure_functions(handler)
    asyncio.run(function([sb_message(b"ok", 1), sb_message(b"ok", 2)]))
    with pytest.raises(HandlerFailed, match="sb-4"):
        asyncio.run(function([sb_message(b"ok", 3), sb_message(b"bad", 4)]))
    assert sorted(done) == ["sb-1", "sb-2", "sb-3"]
    with pytest.raises(MalformedEvent):
        azure_functions(print)("not a message")


# -- Pub/Sub push and Eventarc, through real HTTP servers on loopback -------------------


def push_body(data: bytes, message_id: str = "2070443601311540", **extra: Any) -> dict[str, Any]:
    return {
        "message": {"attributes": {"kind": "order"}, "data": base64.b64encode(data).decode(),
                    "messageId": message_id, "message_id": message_id,
                    "publishTime": "2021-02-26T19:13:55.749123456Z",
                    "publish_time": "2021-02-26T19:13:55.749Z"},
        "subscription": "projects/myproject/subscriptions/mysubscription",
        **extra,
    }


SEEN: list[tuple[str, bytes, dict[str, str], int | None, str | None]] = []


async def push_handler(message: cloudqueue.AsyncReceivedMessage) -> None:
    SEEN.append((message.id, message.body, message.attributes, message.delivery_attempt,
                 message.enqueued_at.isoformat() if message.enqueued_at else None))
    if message.body == b"fail":
        raise RuntimeError("payment declined")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def push_url(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    if request.param == "asgi":
        config = uvicorn.Config(pubsub_push(push_handler), host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/"
        server.should_exit = True
        thread.join(10)
    else:
        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        httpd = make_server("127.0.0.1", port, pubsub_push_wsgi(push_handler), handler_class=Quiet)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{port}/"
        httpd.shutdown()
        thread.join(10)


def test_push_request_success_and_failure(push_url: str) -> None:
    SEEN.clear()
    ok = httpx.post(push_url, json=push_body(b"\x00payload", deliveryAttempt=2))
    assert ok.status_code == 204
    assert SEEN == [("2070443601311540", b"\x00payload", {"kind": "order"}, 2,
                     "2021-02-26T19:13:55.749123+00:00")]
    failed = httpx.post(push_url, json=push_body(b"fail", "m2"))
    assert failed.status_code == 500 and "m2" in failed.text and "declined" not in failed.text


def test_push_cloudevents_binary_and_structured(push_url: str) -> None:
    SEEN.clear()
    envelope = push_body(b"evented", "ce-1")
    binary = httpx.post(push_url, json=envelope, headers={
        "ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/myproject/topics/mytopic", "ce-id": "ce-1"})
    structured = httpx.post(push_url, content=json.dumps({
        "specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/myproject/topics/mytopic", "id": "ce-2",
        "datacontenttype": "application/json", "data": push_body(b"structured", "ce-2")}),
        headers={"content-type": "application/cloudevents+json; charset=utf-8"})
    assert (binary.status_code, structured.status_code) == (204, 204)
    assert [(s[0], s[1], s[3]) for s in SEEN] == [("ce-1", b"evented", None), ("ce-2", b"structured", None)]


@pytest.mark.parametrize(("content", "headers", "expected"), [
    (b"not json", {}, "not JSON"),
    (b"[]", {}, "JSON object"),
    (b'{"subscription": "s"}', {}, "no 'message'"),
    (json.dumps({"message": {"messageId": "1", "data": "***"}}).encode(), {}, "not valid base64"),
    (json.dumps({"message": {"data": ""}}).encode(), {}, "messageId"),
    (json.dumps({"message": {"messageId": "1", "attributes": {"a": 1}}}).encode(), {}, "attributes"),
    (b"{}", {"ce-type": "google.cloud.storage.object.v1.finalized"}, "is not"),
])
def test_push_malformed_requests_get_400_with_the_reason(
    push_url: str, content: bytes, headers: dict[str, str], expected: str
) -> None:
    response = httpx.post(push_url, content=content, headers={"content-type": "application/json", **headers})
    assert response.status_code == 400 and expected in response.text


def test_push_only_accepts_post(push_url: str) -> None:
    assert httpx.get(push_url).status_code == 405
