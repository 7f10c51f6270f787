"""The AWS Lambda adapter with SNS: SNS trigger events and SQS records whose body is an
SNS envelope (raw delivery off), in the shapes AWS documents ("Using Lambda with Amazon
SNS", "Using Lambda with Amazon SQS", "Amazon SNS message and JSON formats"), with bodies
and attributes encoded by cloudqueue.wire's encoders as the SQS/SNS plugin sends them."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest
from opentelemetry.trace import SpanKind
from test_telemetry_runtime import finished, only
from test_telemetry_runtime_serverless import SENDER_SPAN, SENDER_TRACE, TRACEPARENT, span_ids
from test_wire_sns import lambda_sns_object, sqs_envelope

import cloudqueue
from cloudqueue.serverless import HandlerFailed, MalformedEvent, aws_lambda
from cloudqueue.testing.telemetry import Captured
from cloudqueue.wire import (
    MESSAGE_ID_ATTRIBUTE,
    WireDecodeError,
    encode_sqs_attribute,
    encode_sqs_body,
)

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:sns-lambda"


@pytest.fixture
def otel(otel_capture: Captured) -> Captured:
    """The in-memory exporter, with telemetry's liveness looked at again now: it caches a
    "no SDK" answer for a second, which an adapter run by an earlier test may have just
    given, and the first capture() installs the SDK after that."""
    from cloudqueue._telemetry._otel import LIVE

    LIVE.look(time.monotonic())
    return otel_capture


def documented_sns_event() -> dict[str, Any]:
    """The example event of "Using Lambda with Amazon SNS", field for field."""
    return {"Records": [{
        "EventVersion": "1.0",
        "EventSubscriptionArn": TOPIC_ARN + ":21be56ed-a058-49f5-8c98-aedd2564c486",
        "EventSource": "aws:sns",
        "Sns": lambda_sns_object(),
    }]}


def notification(message_id: str, body: bytes, attributes: dict[str, str] | None = None,
                 *, cloudqueue_id: str | None = None) -> dict[str, Any]:
    """The ``Sns`` object (and SQS envelope) of a message the SNS provider published."""
    text, markers = encode_sqs_body(body)
    typed = {name: encode_sqs_attribute(value) for name, value in (attributes or {}).items()}
    typed.update((name, ("String", value)) for name, value in markers.items())
    if cloudqueue_id is not None:
        typed[MESSAGE_ID_ATTRIBUTE] = ("String", cloudqueue_id)
    sns = documented_sns_event()["Records"][0]["Sns"]
    sns.update(MessageId=message_id, Message=text, Subject=None,
               MessageAttributes={name: {"Type": t, "Value": v} for name, (t, v) in typed.items()})
    return dict(sns)


def sns_event(*objects: dict[str, Any]) -> dict[str, Any]:
    record = documented_sns_event()["Records"][0]
    return {"Records": [{**record, "Sns": sns} for sns in objects]}


def sqs_record(message_id: str, body: str, *, attributes: dict[str, tuple[str, str]] | None = None,
               queue: str = "my-queue") -> dict[str, Any]:
    """A record of "Using Lambda with Amazon SQS", field for field, with ``body`` as given."""
    return {
        "messageId": message_id,
        "receiptHandle": f"MessageReceiptHandle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1523232000000",
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": "1523232000001",
        },
        "messageAttributes": {
            name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": kind}
            for name, (kind, value) in (attributes or {}).items()
        },
        "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
        "awsRegion": "us-east-1",
    }


Seen = tuple[str, bytes, dict[str, str], int | None]


def recorder(fail_on: bytes | None = None) -> tuple[list[Seen], Any]:
    seen: list[Seen] = []

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        seen.append((message.id, message.body, message.attributes, message.delivery_attempt))
        if message.body == fail_on:
            raise RuntimeError("no stock")

    return seen, handler


# -- SNS trigger ------------------------------------------------------------------------


def test_the_documented_sns_event_runs_the_handler_and_returns_nothing() -> None:
    enqueued: list[datetime.datetime | None] = []
    seen, record = recorder()

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        record(message)
        enqueued.append(message.enqueued_at)

    assert aws_lambda(handler)(documented_sns_event(), None) is None
    # Binary stays the base64 text SNS carries, as for Binary SQS attributes.
    assert seen == [("95df01b4-ee98-5cb9-9903-4c221d41eb5e", b"Hello from SNS!",
                     {"Test": "TestString", "TestBinary": "TestBinary"}, None)]
    assert enqueued == [datetime.datetime(2019, 1, 2, 12, 45, 7, tzinfo=datetime.UTC)]


def test_sns_records_decode_as_the_provider_sends_and_report_cloudqueue_id() -> None:
    seen, handler = recorder()
    attributes = {"kind": "order", "note": "", "raw": "a\x01b"}
    event = sns_event(
        notification("sns-1", b"\x00\xffbinary", attributes, cloudqueue_id="4f1c0ffee"),
        notification("sns-2", b""),
        notification("sns-3", b"plain text"),
    )
    assert aws_lambda(handler)(event, None) is None
    assert seen == [("4f1c0ffee", b"\x00\xffbinary", attributes, None),
                    ("sns-2", b"", {}, None), ("sns-3", b"plain text", {}, None)]


def test_an_sns_failure_raises_naming_the_failed_messages_after_running_all() -> None:
    seen, handler = recorder(fail_on=b"bad")
    event = sns_event(notification("s1", b"bad", cloudqueue_id="cq-1"), notification("s2", b"ok"))
    with pytest.raises(HandlerFailed) as caught:
        aws_lambda(handler)(event, None)
    assert caught.value.message_ids == ["cq-1"] and "cq-1" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert [body for _, body, _, _ in seen] == [b"bad", b"ok"]  # the other record still ran


def test_an_undecodable_sns_record_raises_without_running_it() -> None:
    seen, handler = recorder()
    broken = notification("s-broken", b"\x00")
    broken["Message"] = "not base64!"
    with pytest.raises(HandlerFailed) as caught:
        aws_lambda(handler)(sns_event(notification("s-good", b"ok"), broken), None)
    assert caught.value.message_ids == ["s-broken"]
    assert isinstance(caught.value.__cause__, WireDecodeError)
    assert [message_id for message_id, *_ in seen] == ["s-good"]


def test_sns_nack_fails_the_invocation_and_what_the_trigger_cannot_do_is_refused() -> None:
    errors: dict[str, str] = {}

    def handler(message: cloudqueue.ReceivedMessage) -> None:
        for name, call in (("dead_letter", lambda: message.dead_letter("x")),
                           ("extend", lambda: message.extend(30)),
                           ("nack_delay", lambda: message.nack(delay=5))):
            with pytest.raises(cloudqueue.Unsupported) as refused:
                call()
            errors[name] = str(refused.value)
        message.nack()

    with pytest.raises(HandlerFailed) as caught:
        aws_lambda(handler)(sns_event(notification("n1", b"x")), None)
    assert caught.value.message_ids == ["n1"]
    assert all("SNS trigger" in text for text in errors.values())
    assert "on-failure destination" in errors["dead_letter"]
    assert "timeout" in errors["extend"] and "retries" in errors["nack_delay"]


# -- SQS records: envelopes (raw delivery off) and raw delivery ---------------------------


def test_an_sqs_record_carrying_the_documented_envelope_is_unwrapped() -> None:
    envelope = sqs_envelope()
    seen, handler = recorder()
    response = aws_lambda(handler)({"Records": [sqs_record("sqs-1", json.dumps(envelope))]}, None)
    assert response == {"batchItemFailures": []}
    assert seen == [(envelope["MessageId"], b"Hello world!", {}, 1)]


def test_envelope_records_decode_our_encoding_and_failures_report_the_sqs_message_id() -> None:
    seen, handler = recorder(fail_on=b"\x00fail")
    ours = notification("sns-a", b"\x00fail", {"kind": "order", "empty": ""}, cloudqueue_id="cq-a")
    foreign = notification("sns-b", b"from another client")
    event = {"Records": [sqs_record("sqs-a", json.dumps(ours)), sqs_record("sqs-b", json.dumps(foreign))]}
    response = aws_lambda(handler)(event, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-a"}]}
    assert seen == [("cq-a", b"\x00fail", {"kind": "order", "empty": ""}, 1),
                    ("sns-b", b"from another client", {}, 1)]


def test_raw_delivery_records_report_cloudqueue_id_but_fail_by_sqs_message_id() -> None:
    seen, handler = recorder(fail_on=b"bad")
    text, markers = encode_sqs_body(b"bad")
    assert markers == {}
    record = sqs_record("sqs-raw", text, attributes={MESSAGE_ID_ATTRIBUTE: ("String", "cq-raw"),
                                                      "kind": ("String", "order")})
    response = aws_lambda(handler)({"Records": [record]}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-raw"}]}
    assert seen == [("cq-raw", b"bad", {"kind": "order"}, 1)]


@pytest.mark.parametrize("body", [
    '{"Type": "Notification", "Message": "an app event that is no envelope"}',
    json.dumps({"Type": "SubscriptionConfirmation", "MessageId": "m", "TopicArn": "t", "Message": "x"}),
    "[1, 2]",
])
def test_json_bodies_that_are_no_notification_stay_intact(body: str) -> None:
    seen, handler = recorder()
    assert aws_lambda(handler)({"Records": [sqs_record("q", body)]}, None) == {"batchItemFailures": []}
    assert seen == [("q", body.encode(), {}, 1)]


def test_a_malformed_envelope_in_an_sqs_record_is_reported_failed_without_running() -> None:
    seen, handler = recorder()
    broken = notification("s", b"x")
    broken["MessageAttributes"] = {"kind": {"Value": "order"}}  # no Type
    event = {"Records": [sqs_record("bad", json.dumps(broken)), sqs_record("good", "ok")]}
    assert aws_lambda(handler)(event, None) == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert [message_id for message_id, *_ in seen] == ["good"]


# -- malformed events --------------------------------------------------------------------


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _record(**changes: Any) -> dict[str, Any]:
    return {**documented_sns_event()["Records"][0], **changes}


def _sns(**changes: Any) -> dict[str, Any]:
    return {**documented_sns_event()["Records"][0]["Sns"], **changes}


@pytest.mark.parametrize(("records", "names"), [
    ([_without(_record(), "Sns")], ("SNS event record 0", "'Sns'")),
    ([_record(Sns="text")], ("SNS event record 0", "'Sns'")),
    ([_record(), _record(Sns=_without(_sns(), "Message"))], ("SNS event record 1", "Message")),
    ([_record(Sns=_sns(Type="SubscriptionConfirmation"))],
     ("SNS event record 0", "SubscriptionConfirmation")),
    ([_record(Sns=_sns(MessageAttributes={"Test": {"Value": "x"}}))], ("SNS event record 0", "'Test'")),
    ([_record(Sns=_sns(Message=42))], ("SNS event record 0", "'Message'")),
    ([_record(Sns=_sns(Timestamp="2 Jan 2019"))], ("SNS event record 0", "'Timestamp'")),
    ([_record(EventSource="aws:kinesis")], ("event record 0", "aws:kinesis")),
    ([sqs_record("q", "x"), _record()], ("event record 1", "aws:sns", "aws:sqs")),
    ([_record(), "not a record"], ("event record 1", "not an object")),
])
def test_malformed_sns_events_fail_the_invocation_naming_record_and_field(
    records: list[Any], names: tuple[str, ...]
) -> None:
    ran: list[object] = []
    with pytest.raises(MalformedEvent) as caught:
        aws_lambda(ran.append)({"Records": records}, None)
    assert ran == []
    assert all(name in str(caught.value) for name in names), str(caught.value)


# -- tracing -------------------------------------------------------------------------------


def test_an_sns_record_with_traceparent_continues_the_senders_trace(otel: Captured) -> None:
    seen: list[dict[str, str]] = []
    sns = notification("sns-t", b"order", {"traceparent": TRACEPARENT, "kind": "order"},
                       cloudqueue_id="cq-t")
    assert aws_lambda(lambda message: seen.append(message.attributes))(sns_event(sns), None) is None

    process = only(finished(otel, "process"))
    assert process.name == "process sns-lambda" and process.kind is SpanKind.CONSUMER
    assert span_ids(process.parent) == (SENDER_TRACE, SENDER_SPAN)
    assert seen == [{"kind": "order"}]  # the carrier never reaches the handler
    attributes = process.attributes or {}
    assert attributes["messaging.system"] == "aws.sns"
    assert attributes["messaging.destination.name"] == "sns-lambda"
    assert attributes["aws.sns.topic.arn"] == TOPIC_ARN
    assert attributes["messaging.message.id"] == "cq-t"


def test_an_envelope_in_an_sqs_record_is_traced_as_the_queue_it_came_from(otel: Captured) -> None:
    sns = notification("sns-e", b"order", {"traceparent": TRACEPARENT})
    record = sqs_record("sqs-e", json.dumps(sns), queue="orders-billing")
    assert aws_lambda(lambda message: None)({"Records": [record]}, None) == {"batchItemFailures": []}

    process = only(finished(otel, "process"))
    assert span_ids(process.parent) == (SENDER_TRACE, SENDER_SPAN)
    attributes = process.attributes or {}
    assert attributes["messaging.system"] == "aws_sqs"
    assert attributes["messaging.destination.name"] == "orders-billing"
