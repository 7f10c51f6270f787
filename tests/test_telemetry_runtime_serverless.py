"""OpenTelemetry in the serverless adapters: each trigger's trace context continues in
the process span, and the carrier attributes stay out of what the handler sees.

Events have the shapes the clouds document; azure-functions' own converter decodes the
Service Bus message; the Pub/Sub push request goes over HTTP to the WSGI adapter."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import azure.functions as func
import httpx
import pytest
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from test_telemetry_runtime import finished, only

import cloudqueue
from cloudqueue.serverless import HandlerFailed, aws_lambda, azure_functions, pubsub_push_wsgi
from cloudqueue.serverless._tracing import traceparent_from_xray
from cloudqueue.testing.telemetry import Captured


@pytest.fixture
def otel(otel_capture: Captured) -> Captured:
    """The process's in-memory exporter and reader (tests/conftest.py), spans cleared."""
    return otel_capture


SENDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{SENDER_TRACE}-{SENDER_SPAN}-01"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def span_ids(context: trace.SpanContext | None) -> tuple[str, str] | None:
    return None if context is None else (f"{context.trace_id:032x}", f"{context.span_id:016x}")


# -- AWS Lambda, SQS trigger ---------------------------------------------------------------


def sqs_record(message_id: str, *, attributes: dict[str, str] | None = None,
               aws_trace_header: str | None = None) -> dict[str, Any]:
    system = {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"}
    if aws_trace_header is not None:
        system["AWSTraceHeader"] = aws_trace_header
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...{message_id}",
        "body": "order",
        "attributes": system,
        "messageAttributes": {
            name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}
            for name, value in (attributes or {}).items()
        },
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:orders",
        "awsRegion": "us-east-2",
    }


def test_xray_header_converts_to_a_w3c_traceparent() -> None:
    assert traceparent_from_xray(XRAY) == "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
    assert traceparent_from_xray(XRAY.replace("Sampled=1", "Sampled=0")).endswith("-00")  # type: ignore[union-attr]
    assert traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1") is None  # no parent
    assert traceparent_from_xray("Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8") is None
    assert traceparent_from_xray(None) is None


def consumed(captured: Captured) -> int:
    """Messages the Lambda adapter counted as consumed from ``orders`` so far."""
    points = captured.points("messaging.client.consumed.messages", messaging__destination__name="orders",
                             messaging__operation__name="process")
    return sum(point.value for point in points)


def test_lambda_record_with_traceparent_continues_the_senders_trace(otel: Captured) -> None:
    seen: list[tuple[dict[str, str], trace.SpanContext]] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.attributes, trace.get_current_span().get_span_context()))

    record = sqs_record("m1", attributes={"traceparent": TRACEPARENT, "tracestate": "k=v", "kind": "order"},
                        aws_trace_header=XRAY)
    consumed_before = consumed(otel)  # metrics are cumulative over the process
    assert aws_lambda(handler)({"Records": [record]}, None) == {"batchItemFailures": []}

    process = only(finished(otel, "process"))
    assert process.name == "process orders" and process.kind is SpanKind.CONSUMER
    assert span_ids(process.parent) == (SENDER_TRACE, SENDER_SPAN)
    assert process.parent is not None and process.parent.trace_state.get("k") == "v"
    # The X-Ray context is linked, never the parent.
    assert [span_ids(link.context) for link in process.links] == [
        ("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8")
    ]
    assert seen == [({"kind": "order"}, process.context)]  # carrier attributes stripped
    attributes = process.attributes or {}
    assert attributes["messaging.system"] == "aws_sqs"
    assert attributes["messaging.destination.name"] == "orders"
    assert attributes["messaging.message.id"] == "m1"
    assert consumed(otel) == consumed_before + 1


def test_lambda_record_with_only_an_aws_trace_header_links_it(otel: Captured) -> None:
    def handler(message: cloudqueue.ReceivedMessage) -> None:
        raise TimeoutError("inventory slow")

    response = aws_lambda(handler)({"Records": [sqs_record("m2", aws_trace_header=XRAY)]}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}

    process = only(finished(otel, "process"))
    assert process.parent is None
    assert [span_ids(link.context) for link in process.links] == [
        ("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8")
    ]
    assert process.links[0].context.trace_flags.sampled
    assert process.status.status_code is StatusCode.ERROR
    assert (process.attributes or {})["error.type"] == "TimeoutError"
    retry = next(event for event in process.events if event.name == "cloudqueue.retry")
    # The trigger redelivers after the visibility timeout: no delay of ours to report.
    assert dict(retry.attributes or {}) == {"cloudqueue.retry.reason": "TimeoutError: inventory slow"}


# -- Azure Functions, Service Bus trigger ----------------------------------------------------


def sb_message(message_id: str, properties: dict[str, str]) -> func.ServiceBusMessage:
    metadata = {
        "MessageId": meta.Datum(message_id, "string"),
        "DeliveryCount": meta.Datum(3, "int"),
        "LockToken": meta.Datum("b7a8b2bb-6b4f-4f0c-9c6d-0f4e2a1a1111", "string"),
        "SequenceNumber": meta.Datum(1, "int"),
        "ApplicationProperties": meta.Datum(json.dumps(properties), "json"),
        "UserProperties": meta.Datum(json.dumps(properties), "json"),
    }
    message = ServiceBusMessageInConverter.decode(meta.Datum(b"order", "bytes"), trigger_metadata=metadata)
    assert isinstance(message, func.ServiceBusMessage)
    return message


OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(("properties", "expected"), [
    ({"Diagnostic-Id": TRACEPARENT, "kind": "order"}, (SENDER_TRACE, SENDER_SPAN)),
    # azure-servicebus reads traceparent first, Diagnostic-Id only without it.
    ({"traceparent": OTHER, "Diagnostic-Id": TRACEPARENT, "kind": "order"},
     ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")),
], ids=["diagnostic-id", "traceparent-first"])
def test_azure_functions_continue_the_senders_trace(
    otel: Captured, properties: dict[str, str], expected: tuple[str, str]
) -> None:
    seen: list[dict[str, str]] = []
    function = azure_functions(lambda message: seen.append(message.attributes), destination="orders")
    function(sb_message("sb-1", properties))

    process = only(finished(otel, "process orders"))
    assert span_ids(process.parent) == expected
    assert seen == [{"kind": "order"}]
    attributes = process.attributes or {}
    assert attributes["messaging.system"] == "servicebus"
    assert attributes["messaging.servicebus.message.delivery_count"] == 3


def test_azure_functions_failure_is_recorded_on_the_span(otel: Captured) -> None:
    def handler(message: cloudqueue.ReceivedMessage) -> None:
        raise KeyError("sku")

    with pytest.raises(HandlerFailed):
        azure_functions(handler)(sb_message("sb-2", {"traceparent": TRACEPARENT}))
    process = only(finished(otel, "process"))
    assert process.name == "process"  # the trigger does not say which queue
    assert process.status.status_code is StatusCode.ERROR
    assert (process.attributes or {})["error.type"] == "KeyError"


# -- Pub/Sub push over HTTP, WSGI ------------------------------------------------------------

PUSH_SEEN: list[tuple[dict[str, str], trace.SpanContext]] = []


def push_handler(message: cloudqueue.ReceivedMessage) -> None:
    PUSH_SEEN.append((message.attributes, trace.get_current_span().get_span_context()))


@pytest.fixture(scope="module")
def push_url() -> Iterator[str]:
    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = make_server("127.0.0.1", 0, pubsub_push_wsgi(push_handler), handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    thread.join(10)


def push_body(attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "message": {"attributes": attributes, "data": base64.b64encode(b"order").decode(),
                    "messageId": "2070443601311540", "publishTime": "2021-02-26T19:13:55.749Z"},
        "subscription": "projects/myproject/subscriptions/orders-push",
        "deliveryAttempt": 2,
    }


def test_push_request_traceparent_parents_the_span_and_the_message_is_linked(
    otel: Captured, push_url: str
) -> None:
    PUSH_SEEN.clear()
    message_context = {"googclient_traceparent": TRACEPARENT, "kind": "order"}
    response = httpx.post(push_url, json=push_body(message_context), headers={"traceparent": OTHER})
    assert response.status_code == 204

    process = only(finished(otel, "process"))
    assert span_ids(process.parent) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert [span_ids(link.context) for link in process.links] == [(SENDER_TRACE, SENDER_SPAN)]
    assert [({"kind": "order"}, process.context)] == PUSH_SEEN
    attributes = process.attributes or {}
    assert attributes["messaging.system"] == "gcp_pubsub"
    assert attributes["messaging.destination.subscription.name"] == "orders-push"
    assert attributes["messaging.gcp_pubsub.message.delivery_attempt"] == 2


def test_push_without_a_request_traceparent_continues_the_message(otel: Captured, push_url: str) -> None:
    PUSH_SEEN.clear()
    response = httpx.post(push_url, json=push_body({"googclient_traceparent": TRACEPARENT}))
    assert response.status_code == 204
    process = only(finished(otel, "process"))
    assert span_ids(process.parent) == (SENDER_TRACE, SENDER_SPAN) and not process.links
    assert PUSH_SEEN[0][0] == {}


# -- off: no opentelemetry import, carrier attributes still stripped ---------------------------

_OFF_SCRIPT = textwrap.dedent(
    """
    import base64, io, json, sys
    from cloudqueue.serverless import aws_lambda, pubsub_push_wsgi

    seen = []
    record = {
        "messageId": "m1", "receiptHandle": "r", "body": "order", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:orders",
        "attributes": {"ApproximateReceiveCount": "1", "AWSTraceHeader": sys.argv[2]},
        "messageAttributes": {name: {"stringValue": value, "dataType": "String"}
                              for name, value in (("traceparent", sys.argv[1]), ("kind", "order"))},
    }
    lambda_answer = aws_lambda(lambda message: seen.append(message.attributes))({"Records": [record]}, None)
    body = json.dumps({"message": {"messageId": "p1", "data": base64.b64encode(b"x").decode(),
                                   "attributes": {"googclient_traceparent": sys.argv[1], "kind": "push"}},
                       "subscription": "projects/p/subscriptions/s"}).encode()
    statuses = []
    pubsub_push_wsgi(lambda message: seen.append(message.attributes))(
        {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
         "HTTP_TRACEPARENT": sys.argv[1], "wsgi.input": io.BytesIO(body)},
        lambda status, headers: statuses.append(status),
    )
    print(json.dumps({
        "lambda": lambda_answer, "statuses": statuses, "seen": seen,
        "imported": sorted(name for name in sys.modules if name.startswith("opentelemetry")),
    }))
    """
)


def test_adapters_with_telemetry_off_strip_carriers_and_never_import_opentelemetry() -> None:
    env = {**os.environ, "CLOUDQUEUE_TELEMETRY": "off"}
    done = subprocess.run(
        [sys.executable, "-c", _OFF_SCRIPT, TRACEPARENT, XRAY], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "lambda": {"batchItemFailures": []},
        "statuses": ["204 No Content"],
        "seen": [{"kind": "order"}, {"kind": "push"}],
        "imported": [],
    }
