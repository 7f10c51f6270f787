"""The SQS driver's pure parts: codec, error table, FIFO group sequencing, URL rules."""

from __future__ import annotations

import hashlib
import re

import botocore.exceptions as bex
import cloudqueue
import pytest
from cloudqueue.errors import ErrorCode, translate

from cloudqueue_sqs import _codec
from cloudqueue_sqs._driver import FIFO, LIMITS, STANDARD
from cloudqueue_sqs._errors import CALL_ERRORS, entry_error
from cloudqueue_sqs._queues import dead_letter_twin


@pytest.mark.parametrize("value", ["plain", "", "\x01ctl", "grüße ✓", "\ufffe"])
def test_attribute_values_round_trip_through_the_wire_form(value: str) -> None:
    wire = _codec.encode_attribute(value)
    assert wire["StringValue"] and re.fullmatch(r"String(\..+)?", wire["DataType"])
    assert _codec.decode_attributes({"a": wire}) == {"a": value}


def test_entries_carry_markers_groups_and_rounded_delays() -> None:
    message = cloudqueue.Message(b"\x00\xff", attributes={"k": "v"}, delay=1.2)
    entry = _codec.encode_entry("0", message, fifo=False, content_based_dedup=False)
    assert entry["DelaySeconds"] == 2
    assert entry["MessageAttributes"]["cloudqueue.encoding"]["StringValue"] == "base64"
    attributes = _codec.decode_attributes(entry["MessageAttributes"])
    assert _codec.decode_body(entry["MessageBody"], attributes) == (b"\x00\xff", {"k": "v"})
    fifo = _codec.encode_entry("1", cloudqueue.Message(b"x", ordering_key="g"), fifo=True,
                               content_based_dedup=True)
    # Content-based: the SHA-256 of the body SQS would compute, under the prefix that
    # marks it as made up (a received message reports None for it).
    assert fifo["MessageGroupId"] == "g"
    assert fifo["MessageDeduplicationId"] == "cloudqueue.body-" + hashlib.sha256(b"x").hexdigest()
    keyless = [_codec.encode_entry("2", cloudqueue.Message(b"x"), fifo=True,
                                   content_based_dedup=False) for _ in range(2)]
    assert keyless[0]["MessageGroupId"] != keyless[1]["MessageGroupId"]
    assert keyless[0]["MessageDeduplicationId"] != keyless[1]["MessageDeduplicationId"]


def test_measure_counts_base64_growth_and_attribute_types() -> None:
    assert _codec.measure(cloudqueue.Message(b"abc")) == 3
    binary = _codec.measure(cloudqueue.Message(b"\x00" * 300))
    assert binary == 400 + len("cloudqueue.encoding") + len("String") + len("base64")
    assert _codec.measure(cloudqueue.Message(b"a", attributes={"n": "vv"})) == 1 + 1 + 6 + 2


def test_limits_and_capabilities() -> None:
    pattern = re.compile(LIMITS.attribute_name_pattern or "")
    for good in ("a", "a.b", "x_y-z", "AWSish"):
        assert pattern.fullmatch(good), good
    for bad in (".a", "a.", "a..b", "aws.x", "Amazon.x", "a b"):
        assert not pattern.fullmatch(bad), bad
    assert LIMITS.max_attributes == 8
    assert FIFO.ordering and FIFO.deduplication and not FIFO.delayed_delivery
    assert FIFO.limits.max_delay is None
    assert not STANDARD.ordering and STANDARD.delayed_delivery and STANDARD.limits.max_delay == 900
    assert dead_letter_twin("q") == "q-dlq" and dead_letter_twin("q.fifo") == "q-dlq.fifo"


_LOCAL = "http://127.0.0.1:1"


def _client_error(code: str, status: int = 400) -> bex.ClientError:
    return bex.ClientError(
        {"Error": {"Code": code, "Message": "text is never read"},
         "ResponseMetadata": {"HTTPStatusCode": status}}, "SendMessage")


@pytest.mark.parametrize(
    ("raised", "code", "retryable"),
    [
        (_client_error("AWS.SimpleQueueService.NonExistentQueue"), ErrorCode.NOT_FOUND, False),
        (_client_error("QueueDoesNotExist"), ErrorCode.NOT_FOUND, False),
        (_client_error("RequestThrottled"), ErrorCode.RESOURCE_EXHAUSTED, True),
        (_client_error("InvalidParameterValue"), ErrorCode.INVALID_ARGUMENT, False),
        (_client_error("AccessDenied", 403), ErrorCode.PERMISSION_DENIED, False),
        (_client_error("SomethingNew", 503), ErrorCode.UNAVAILABLE, True),
        (bex.EndpointConnectionError(endpoint_url=_LOCAL), ErrorCode.UNAVAILABLE, True),
        (bex.ReadTimeoutError(endpoint_url=_LOCAL), ErrorCode.DEADLINE_EXCEEDED, True),
        (bex.NoCredentialsError(), ErrorCode.PERMISSION_DENIED, False),
    ],
)
def test_errors_are_translated_by_table(
    raised: Exception, code: ErrorCode, retryable: bool
) -> None:
    with pytest.raises(cloudqueue.QueueError) as info, translate(CALL_ERRORS, "sending"):
        raise raised
    assert info.value.code is code and info.value.retryable is retryable
    assert info.value.__cause__ is raised


def test_batch_entry_failures_use_the_same_table() -> None:
    invalid = entry_error("sending", {"Id": "1", "Code": "InvalidMessageContents",
                                      "SenderFault": False})
    assert invalid.code is ErrorCode.INVALID_ARGUMENT and not invalid.retryable
    outage = entry_error("sending", {"Id": "1", "Code": "Unheard", "SenderFault": False})
    assert outage.code is ErrorCode.UNAVAILABLE and outage.retryable


@pytest.mark.parametrize("after", [1001, 5000])
def test_dead_letter_after_outside_the_redrive_range_is_refused_before_any_request(
    after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # Nothing listens on port 9: any request would fail with Unavailable instead.
    url = "sqs://orders?region=us-east-1&endpoint_url=http://127.0.0.1:9"
    with pytest.raises(cloudqueue.InvalidArgument, match=r"1\.\.1000") as info:
        cloudqueue.declare(url, dead_letter_after=after)
    assert info.type is cloudqueue.InvalidArgument
