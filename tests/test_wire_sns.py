"""cloudqueue.wire's SNS envelope reader, fed the shapes AWS documents: the notification
an SQS queue receives with raw delivery off ("Amazon SNS message and JSON formats"), and
the ``Sns`` object of a Lambda SNS event ("Using Lambda with Amazon SNS")."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from cloudqueue.wire import (
    BASE64,
    BASE64_TYPE,
    EMPTY_TYPE,
    ENCODING_ATTRIBUTE,
    MESSAGE_ID_ATTRIBUTE,
    SnsNotification,
    WireDecodeError,
    decode_sqs_body,
    encode_sqs_attribute,
    encode_sqs_body,
    sns_attribute_text,
    sns_notification,
)

TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"


def sqs_envelope(**overrides: Any) -> dict[str, Any]:
    """The notification an SQS subscription receives with raw delivery off (AWS's example)."""
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "My First Message",
        "Message": "Hello world!",
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEw6JRN...",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
        + TOPIC + ":c9135db0-26c4-47ec-8998-413945fb5a96",
    }
    envelope.update(overrides)
    return envelope


def lambda_sns_object() -> dict[str, Any]:
    """The ``Sns`` object of the Lambda developer guide's example SNS event."""
    return {
        "SignatureVersion": "1",
        "Timestamp": "2019-01-02T12:45:07.000Z",
        "Signature": "tcc6faL2yUC6dgZdmrwh1Y4cGa/ebXEkAi6RibDsvpi+tE/1+82j...65r==",
        "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ac565b8b1a6c5d002d285f9598aa1d9b.pem",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "Message": "Hello from SNS!",
        "MessageAttributes": {
            "Test": {"Type": "String", "Value": "TestString"},
            "TestBinary": {"Type": "Binary", "Value": "TestBinary"},
        },
        "Type": "Notification",
        "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&amp;SubscriptionArn="
        "arn:aws:sns:us-east-1:123456789012:test-lambda:21be56ed-a058-49f5-8c98-aedd2564c486",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:sns-lambda",
        "Subject": "TestInvoke",
    }


def test_reads_the_sqs_notification_without_attributes() -> None:
    notification = sns_notification(json.dumps(sqs_envelope()))
    assert notification == SnsNotification(
        message_id="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        topic_arn=TOPIC,
        message="Hello world!",
        attributes={},
        timestamp=datetime.datetime(2012, 5, 2, 0, 54, 6, 655000, tzinfo=datetime.UTC),
        subject="My First Message",
    )


def test_reads_the_lambda_sns_object_with_string_and_binary_attributes() -> None:
    notification = sns_notification(json.dumps(lambda_sns_object()))
    assert notification is not None
    assert notification.message_id == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    assert notification.topic_arn == "arn:aws:sns:us-east-1:123456789012:sns-lambda"
    assert notification.message == "Hello from SNS!"
    assert notification.subject == "TestInvoke"
    assert notification.timestamp == datetime.datetime(2019, 1, 2, 12, 45, 7, tzinfo=datetime.UTC)
    # Binary stays the base64 text SNS carries, as sqs_attribute_text gives it.
    assert notification.attributes == {"Test": "TestString", "TestBinary": "TestBinary"}


def test_subject_absent_or_null_is_none() -> None:
    without = sqs_envelope()
    del without["Subject"]
    for envelope in (without, sqs_envelope(Subject=None)):
        notification = sns_notification(json.dumps(envelope))
        assert notification is not None and notification.subject is None


def test_number_and_string_array_attributes_give_their_text() -> None:
    envelope = sqs_envelope(MessageAttributes={
        "price": {"Type": "Number", "Value": "12.50"},
        "price.cents": {"Type": "Number.cents", "Value": "1250"},
        "tags": {"Type": "String.Array", "Value": '["a", "b"]'},
        "payload": {"Type": "Binary", "Value": base64.b64encode(b"\x00\xff").decode()},
    })
    notification = sns_notification(json.dumps(envelope))
    assert notification is not None
    assert notification.attributes == {
        "price": "12.50", "price.cents": "1250", "tags": '["a", "b"]', "payload": "AP8=",
    }


def test_our_encoded_body_and_attributes_decode_as_sent() -> None:
    """What the SNS producer publishes (SQS codec text, markers, cloudqueue.id) comes back whole."""
    body = b"\x00binary\xff"
    text, markers = encode_sqs_body(body)
    sent = {"empty": "", "control": "bell\x07", "plain": "x"}
    typed = {name: encode_sqs_attribute(value) for name, value in sent.items()}
    typed.update((name, ("String", value)) for name, value in markers.items())
    typed[MESSAGE_ID_ATTRIBUTE] = ("String", "0123abcd")
    assert typed["empty"][0] == EMPTY_TYPE and typed["control"][0] == BASE64_TYPE
    envelope = sqs_envelope(
        Message=text,
        MessageAttributes={name: {"Type": t, "Value": v} for name, (t, v) in typed.items()},
    )
    notification = sns_notification(json.dumps(envelope))
    assert notification is not None
    assert notification.attributes == {**sent, ENCODING_ATTRIBUTE: BASE64, MESSAGE_ID_ATTRIBUTE: "0123abcd"}
    assert decode_sqs_body(notification.message, notification.attributes) == body


def test_sns_attribute_text_decodes_our_types_and_keeps_the_rest() -> None:
    assert sns_attribute_text(EMPTY_TYPE, "-") == ""
    assert sns_attribute_text(BASE64_TYPE, base64.b64encode(b"a\x07").decode()) == "a\x07"
    assert sns_attribute_text("Binary", "AP8=") == "AP8="
    assert sns_attribute_text("Number", "3") == "3"
    assert sns_attribute_text("String", "") == ""
    with pytest.raises(WireDecodeError, match=BASE64_TYPE):
        sns_attribute_text(BASE64_TYPE, "not base64!")


@pytest.mark.parametrize("text", [
    "Hello world!",
    "",
    "{not json",
    '{"order": 7, "Type": "paid"}',
    '["Type", "Notification"]',
    "42",
    "null",
    '"Notification"',
    # A subscription confirmation is an envelope, but no message: left alone.
    json.dumps(sqs_envelope(Type="SubscriptionConfirmation", Token="2336412f37")),
    # An application body that calls itself a notification but lacks SNS's identity fields.
    '{"Type": "Notification", "Message": "hi"}',
    "{" + '"a":[' * 100_000,  # nested deeper than json parses
])
def test_non_envelopes_are_none(text: str) -> None:
    assert sns_notification(text) is None


@pytest.mark.parametrize(("override", "field"), [
    ({"Message": 7}, "'Message'"),
    ({"MessageId": None}, "'MessageId'"),
    ({"TopicArn": ["arn"]}, "'TopicArn'"),
    ({"Subject": 1}, "'Subject'"),
    ({"Timestamp": "yesterday"}, "'Timestamp'"),
    ({"Timestamp": 1335919446}, "'Timestamp'"),
    ({"MessageAttributes": ["a"]}, "'MessageAttributes'"),
    ({"MessageAttributes": {"color": "red"}}, "'color'"),
    ({"MessageAttributes": {"color": {"Value": "red"}}}, "'color'"),
    ({"MessageAttributes": {"color": {"Type": "String"}}}, "'color'"),
    ({"MessageAttributes": {"color": {"Type": "String", "Value": 3}}}, "'color'"),
    ({"MessageAttributes": {"color": {"Type": BASE64_TYPE, "Value": "%%%"}}}, BASE64_TYPE),
])
def test_malformed_envelopes_raise_naming_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(WireDecodeError) as caught:
        sns_notification(json.dumps(sqs_envelope(**override)))
    assert field in str(caught.value)
