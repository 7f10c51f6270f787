"""Claim checks behind every serverless adapter: Lambda (SQS and SNS triggers), Azure
Functions (Service Bus trigger) and Pub/Sub push (ASGI and WSGI, served on loopback).

Events are built as the adapter tests build them (the shapes the clouds document,
decoded by azure-functions' own converter), carrying the pointer an offloading producer
sends, with a ``file://`` store in tmp_path."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import uvicorn
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter
from opentelemetry.trace import StatusCode
from test_serverless import free_port, push_body, sb_metadata, sqs_record
from test_serverless_sns import notification, sns_event
from test_telemetry_runtime import finished
from test_telemetry_runtime_serverless import SENDER_SPAN, SENDER_TRACE, TRACEPARENT, span_ids

import cloudqueue
from cloudqueue import Offload, PayloadUnavailable
from cloudqueue.errors import InvalidArgument
from cloudqueue.offload import open_store
from cloudqueue.offload._pointer import our_pointer
from cloudqueue.serverless import (
    HandlerFailed,
    aws_lambda,
    azure_functions,
    pubsub_push,
    pubsub_push_wsgi,
)
from cloudqueue.testing.telemetry import Captured

#: (message id, body as sent, attributes as sent)
Sent = tuple[str, bytes, dict[str, str]]
#: Runs a handler behind one adapter on messages; the ids the trigger is told failed.
Deliver = Callable[[Callable[..., Any], "Offload | None", list[Sent]], set[str]]


def pointer(store_dir: Path, message_id: str, payload: bytes) -> Sent:
    """The message an offloading producer sends: payload in the store, pointer as body,
    the ``cloudqueue.payload`` marker beside a user attribute."""
    uri = open_store(f"file://{store_dir}").put(f"payload-{message_id}", payload)
    body, markers = our_pointer(uri, len(payload), hashlib.sha256(payload).hexdigest())
    return message_id, body, {**markers, "kind": "large"}


# -- one way to run each adapter -----------------------------------------------------------


def via_lambda_sqs(handler: Callable[..., Any], offload: Offload | None, sent: list[Sent]) -> set[str]:
    event = {"Records": [sqs_record(i, body, attributes=attributes) for i, body, attributes in sent]}
    response = aws_lambda(handler, offload=offload)(event, None)
    assert response is not None
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


def via_lambda_sns(handler: Callable[..., Any], offload: Offload | None, sent: list[Sent]) -> set[str]:
    event = sns_event(*(notification(i, body, attributes) for i, body, attributes in sent))
    try:
        assert aws_lambda(handler, offload=offload)(event, None) is None
    except HandlerFailed as failure:
        return set(failure.message_ids)
    return set()


def servicebus_message(message_id: str, body: bytes, properties: dict[str, str]) -> Any:
    """What the Functions host hands over, decoded by azure-functions' converter."""
    metadata = sb_metadata(1, properties=dict(properties))
    metadata["MessageId"] = meta.Datum(message_id, "string")
    return ServiceBusMessageInConverter.decode(meta.Datum(body, "bytes"), trigger_metadata=metadata)


def via_functions(handler: Callable[..., Any], offload: Offload | None, sent: list[Sent]) -> set[str]:
    """A ``cardinality="many"`` batch: the host abandons all of it on HandlerFailed, which
    names the messages that failed."""
    function = azure_functions(handler, offload=offload)
    batch = [servicebus_message(*one) for one in sent]
    try:
        if inspect.iscoroutinefunction(function):
            asyncio.run(function(batch))
        else:
            function(batch)
    except HandlerFailed as failure:
        return set(failure.message_ids)
    return set()


@contextmanager
def served(app: Any, kind: str) -> Iterator[str]:
    """``app`` behind a real HTTP server on loopback (uvicorn for ASGI, wsgiref for WSGI)."""
    port = free_port()
    if kind == "asgi":
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            server.should_exit = True
            thread.join(10)
        return

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = make_server("127.0.0.1", port, app, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def via_push(kind: str) -> Deliver:
    make = pubsub_push if kind == "asgi" else pubsub_push_wsgi

    def deliver(handler: Callable[..., Any], offload: Offload | None, sent: list[Sent]) -> set[str]:
        failed: set[str] = set()
        with served(make(handler, offload=offload), kind) as url:
            for message_id, body, attributes in sent:
                request = push_body(body, message_id)
                request["message"]["attributes"] = attributes
                status = httpx.post(url, json=request).status_code
                assert status in (204, 500)
                if status != 204:
                    failed.add(message_id)
        return failed

    return deliver


ADAPTERS: dict[str, Deliver] = {
    "lambda-sqs": via_lambda_sqs,
    "lambda-sns": via_lambda_sns,
    "functions": via_functions,
    "push-asgi": via_push("asgi"),
    "push-wsgi": via_push("wsgi"),
}


@pytest.fixture(params=sorted(ADAPTERS))
def deliver(request: pytest.FixtureRequest) -> Deliver:
    return ADAPTERS[request.param]


@dataclass
class Seen:
    """What the handler found in each message: its body, or the error reading it raised."""

    bodies: dict[str, bytes]
    attributes: dict[str, dict[str, str]]
    errors: dict[str, PayloadUnavailable]


def recording_handler(style: str = "sync") -> tuple[Seen, Callable[..., Any]]:
    """A handler that reads every body; one it cannot read fails the message."""
    seen = Seen({}, {}, {})
    lock = threading.Lock()

    def record(message: cloudqueue.ReceivedMessage | cloudqueue.AsyncReceivedMessage) -> None:
        with lock:
            seen.attributes[message.id] = dict(message.attributes)
            try:
                seen.bodies[message.id] = message.body
            except PayloadUnavailable as error:
                seen.errors[message.id] = error
                raise

    if style == "sync":
        return seen, record

    async def handler(message: cloudqueue.AsyncReceivedMessage) -> None:
        await asyncio.sleep(0)
        record(message)

    return seen, handler


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["sync", "async"])
def test_the_handler_gets_the_payload_of_a_pointer(
    deliver: Deliver, style: str, tmp_path: Path
) -> None:
    payload = os.urandom(300_000)
    seen, handler = recording_handler(style)
    sent = [pointer(tmp_path, "big-1", payload), ("small-2", b"inline", {"kind": "small"})]
    assert deliver(handler, Offload(f"file://{tmp_path}"), sent) == set()
    assert seen.bodies == {"big-1": payload, "small-2": b"inline"}
    # The marker is the library's: the handler sees only the sender's attributes.
    assert seen.attributes == {"big-1": {"kind": "large"}, "small-2": {"kind": "small"}}
    assert seen.errors == {}


def test_a_missing_object_fails_only_its_message(deliver: Deliver, tmp_path: Path) -> None:
    kept = pointer(tmp_path, "kept", b"still here" * 1000)
    gone = pointer(tmp_path, "gone", b"deleted before delivery")
    (tmp_path / "payload-gone").unlink()
    seen, handler = recording_handler()
    failed = deliver(handler, Offload(f"file://{tmp_path}"), [kept, gone, ("plain", b"p", {})])
    assert failed == {"gone"}
    assert seen.bodies == {"kept": b"still here" * 1000, "plain": b"p"}
    error = seen.errors["gone"]
    assert error.message_id == "gone" and "payload-gone" in str(error)
    assert not error.retryable  # missing stays missing: the trigger's retries dead-letter it


def test_without_offload_a_pointer_body_raises_payload_unavailable(
    deliver: Deliver, tmp_path: Path
) -> None:
    seen, handler = recording_handler()
    failed = deliver(handler, None, [pointer(tmp_path, "m1", b"needs a store"), ("m2", b"ok", {})])
    assert failed == {"m1"}
    assert seen.bodies == {"m2": b"ok"}  # never the pointer JSON as a body
    assert "no offload= location" in str(seen.errors["m1"])
    assert seen.attributes["m1"] == {"kind": "large"}


def test_a_pointer_outside_the_location_is_not_fetched(deliver: Deliver, tmp_path: Path) -> None:
    """The object exists and is readable, but outside the adapter's location: a message
    must not make a function read other places with its credentials."""
    inside, elsewhere = tmp_path / "ours", tmp_path / "elsewhere"
    seen, handler = recording_handler()
    sent = [pointer(elsewhere, "foreign", b"secret file"), pointer(inside, "own", b"ours")]
    failed = deliver(handler, Offload(f"file://{inside}"), sent)
    assert failed == {"foreign"}
    assert seen.bodies == {"own": b"ours"}
    assert "outside" in str(seen.errors["foreign"]) and str(inside) in str(seen.errors["foreign"])


def test_fifo_records_stop_at_a_payload_that_cannot_be_read(tmp_path: Path) -> None:
    """On a FIFO queue the unreadable record fails in the handler, so it and every later
    record are reported (their order must hold), as for any handler failure."""
    ran: list[str] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        ran.append(message.id)
        message.body  # noqa: B018

    records = []
    for message_id in ("f1", "f2", "f3"):
        _, body, attributes = pointer(tmp_path, message_id, message_id.encode() * 100)
        records.append(sqs_record(message_id, body, attributes=attributes, group="g", fifo=True))
    (tmp_path / "payload-f2").unlink()
    response = aws_lambda(handler, offload=Offload(f"file://{tmp_path}"))({"Records": records}, None)
    assert ran == ["f1", "f2"]
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ("f2", "f3")]}


BUILDERS: dict[str, Callable[..., Any]] = {
    "aws_lambda": aws_lambda,
    "azure_functions": azure_functions,
    "pubsub_push": pubsub_push,
    "pubsub_push_wsgi": pubsub_push_wsgi,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_bad_offload_argument_is_refused_naming_the_adapter(name: str, tmp_path: Path) -> None:
    build = BUILDERS[name]
    with pytest.raises(InvalidArgument, match=rf"{name}\(offload=...\) must be a cloudqueue.Offload"):
        build(print, offload=f"file://{tmp_path}")
    with pytest.raises(InvalidArgument, match="delete_after_ack is not supported") as refused:
        build(print, offload=Offload(f"file://{tmp_path}", delete_after_ack=True))
    assert name in str(refused.value) and "lifecycle rule" in str(refused.value)



@pytest.fixture
def otel(otel_capture: Captured) -> Captured:
    """The in-memory exporter, with telemetry's liveness looked at again now: it caches a
    "no SDK" answer for a second, which an adapter run by an earlier test may have given."""
    from cloudqueue._telemetry._otel import LIVE

    LIVE.look(time.monotonic())
    return otel_capture


def test_a_payload_that_cannot_be_read_fails_its_span_in_the_senders_trace(
    otel: Captured, tmp_path: Path
) -> None:
    """Each message keeps its own process span, continuing the sender's trace; the one
    whose payload is missing ends in error with the reason, the resolved one does not."""
    gone = pointer(tmp_path, "gone", b"deleted")
    (tmp_path / "payload-gone").unlink()
    kept = pointer(tmp_path, "kept", b"here")
    batch = [servicebus_message(i, body, {**attributes, "traceparent": TRACEPARENT})
             for i, body, attributes in (gone, kept)]
    seen, handler = recording_handler()
    function = azure_functions(handler, destination="orders", offload=Offload(f"file://{tmp_path}"))
    with pytest.raises(HandlerFailed) as failure:
        function(batch)
    assert failure.value.message_ids == ["gone"]
    assert seen.attributes == {"gone": {"kind": "large"}, "kept": {"kind": "large"}}

    spans = {
        (span.attributes or {})["messaging.message.id"]: span for span in finished(otel, "process orders")
    }
    assert set(spans) == {"gone", "kept"}
    assert all(span_ids(span.parent) == (SENDER_TRACE, SENDER_SPAN) for span in spans.values())
    assert spans["kept"].status.status_code is not StatusCode.ERROR
    failed = spans["gone"]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "cloudqueue.errors.PayloadUnavailable"
    retry = next(event for event in failed.events if event.name == "cloudqueue.retry")
    assert "payload-gone" in str((retry.attributes or {})["cloudqueue.retry.reason"])
