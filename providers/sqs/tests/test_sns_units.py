"""The SNS provider's pure parts: publish entries, their measure, SNS's error codes, the
queue naming and policy rules."""

from __future__ import annotations

import json

import cloudqueue
import pytest
from cloudqueue.errors import ErrorCode
from cloudqueue.wire import MESSAGE_ID_ATTRIBUTE

from cloudqueue_sqs import _codec
from cloudqueue_sqs._errors import code_for, entry_error
from cloudqueue_sqs._subscriptions import POLICY_SID, queue_policy, topic_queues


def test_a_publish_entry_is_the_sqs_entry_plus_the_id() -> None:
    message = cloudqueue.Message(b"\x00", attributes={"k": ""}, ordering_key="g")
    entry = _codec.encode_publish_entry("3", message, fifo=True, content_based_dedup=False,
                                        message_id="f" * 32)
    sqs = _codec.encode_entry("3", message, fifo=True, content_based_dedup=False)
    assert entry["Message"] == sqs["MessageBody"] and "MessageBody" not in entry
    assert entry["MessageGroupId"] == "g"
    attributes = entry["MessageAttributes"]
    assert attributes.pop(MESSAGE_ID_ATTRIBUTE) == {"DataType": "String", "StringValue": "f" * 32}
    assert attributes == sqs["MessageAttributes"]
    decoded = _codec.decode_attributes(entry["MessageAttributes"])
    assert _codec.decode_body(entry["Message"], decoded) == (b"\x00", {"k": ""})


def test_the_measure_counts_the_id_attribute_exactly() -> None:
    message = cloudqueue.Message(b"body", attributes={"a": "b"})
    entry = _codec.encode_publish_entry("0", message, fifo=False, content_based_dedup=False,
                                        message_id="0123456789abcdef0123456789abcdef")
    on_wire = len(entry["Message"].encode()) + sum(
        len(name) + len(value["DataType"]) + len(value["StringValue"])
        for name, value in entry["MessageAttributes"].items()
    )
    assert _codec.measure_published(message) == on_wire


def test_a_received_message_reports_the_senders_id_when_it_carries_one() -> None:
    assert _codec.message_id("sqs-id", {MESSAGE_ID_ATTRIBUTE: "ours"}) == "ours"
    assert _codec.message_id("sqs-id", {"other": "x"}) == "sqs-id"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("NotFound", ErrorCode.NOT_FOUND),
        ("InvalidParameter", ErrorCode.INVALID_ARGUMENT),
        ("ParameterValueInvalid", ErrorCode.INVALID_ARGUMENT),
        ("AuthorizationError", ErrorCode.PERMISSION_DENIED),
        ("Throttled", ErrorCode.RESOURCE_EXHAUSTED),
        ("KMSThrottling", ErrorCode.RESOURCE_EXHAUSTED),
        ("KMSDisabled", ErrorCode.FAILED_PRECONDITION),
        ("BatchEntryIdsNotDistinct", ErrorCode.INVALID_ARGUMENT),
    ],
)
def test_sns_codes_map_to_portable_codes(code: str, expected: ErrorCode) -> None:
    assert code_for(code) is expected


def test_a_failed_publish_entry_names_the_code_and_is_retryable_only_when_sns_failed() -> None:
    refused = entry_error("publishing", {"Id": "0", "Code": "InvalidParameter",
                                         "Message": "Message too long", "SenderFault": True})
    assert isinstance(refused, cloudqueue.InvalidArgument) and not refused.retryable
    assert "InvalidParameter: Message too long" in str(refused)
    outage = entry_error("publishing", {"Id": "1", "Code": "Odd", "SenderFault": False})
    assert outage.retryable


def test_the_policy_replaces_only_its_own_statement() -> None:
    users = {"Sid": "mine", "Effect": "Deny", "Principal": "*", "Action": "sqs:*"}
    old = {"Sid": POLICY_SID, "Effect": "Allow", "Condition": {"ArnEquals": {"aws:SourceArn": "old"}}}
    policy = json.loads(queue_policy(json.dumps({"Statement": [users, old]}), "q-arn", "t-arn"))
    first, ours = policy["Statement"]
    assert first == users
    assert ours["Resource"] == "q-arn"
    assert ours["Condition"] == {"ArnEquals": {"aws:SourceArn": "t-arn"}}


def test_a_topics_queues_are_those_the_naming_rule_gives() -> None:
    names = ["orders-billing", "orders-", "orders-x.y", "ordersx-a", "orders-ship.fifo", "other"]
    assert topic_queues("orders", names) == ["orders-billing"]
    assert topic_queues("orders.fifo", names) == ["orders-ship.fifo"]
