"""cloudqueue.cloudevents without a transport: bindings per scheme, the codec's contract,
and clear errors for what is not a CloudEvent."""

from __future__ import annotations

import datetime

import pytest

import cloudqueue
from cloudqueue.cloudevents import Binding, CloudEvent, CloudEventCodec, binding_for, to_message
from cloudqueue.codecs import codec_for_type, codec_for_value
from cloudqueue.errors import DecodeError

TIME = datetime.datetime(2026, 3, 1, 12, 30, 15, tzinfo=datetime.UTC)


def event() -> CloudEvent:
    return CloudEvent({"type": "t.placed", "source": "/s", "id": "1", "time": TIME,
                       "datacontenttype": "application/json", "retries": 3, "urgent": True}, {"a": 1})


@pytest.mark.parametrize(("scheme", "binding", "mode"), [
    ("azuresb", Binding.AMQP, "binary"), ("amqp", Binding.AMQP, "binary"),
    ("pubsub://p/t", Binding.PUBSUB, "binary"), ("sqs", Binding.ATTRIBUTES, "structured"),
    ("sns", Binding.ATTRIBUTES, "structured"), ("memory", Binding.ATTRIBUTES, "structured"),
    ("sqlite:///x.db", Binding.ATTRIBUTES, "structured"), ("custom", Binding.ATTRIBUTES, "structured"),
])
def test_each_scheme_has_its_binding_and_default_mode(scheme: str, binding: Binding, mode: str) -> None:
    assert binding_for(scheme) is binding
    body, attributes = CloudEventCodec().encode(event(), scheme)
    if mode == "structured":
        assert attributes == {"content-type": "application/cloudevents+json"}
    else:
        assert body == b'{"a": 1}' and attributes["content-type"] == "application/json"
        # Canonical strings of the CloudEvents type system for non-string extensions.
        assert attributes[binding.prefix + "retries"] == "3"
        assert attributes[binding.prefix + "urgent"] == "true"
        assert attributes[binding.prefix + "time"] == "2026-03-01T12:30:15Z"


def test_the_codec_is_chosen_for_the_event_type_and_its_values() -> None:
    assert isinstance(codec_for_type(CloudEvent), CloudEventCodec)
    assert isinstance(codec_for_value(event()), CloudEventCodec)
    codec = CloudEventCodec("binary")
    assert codec.handles(CloudEvent) and not codec.handles(dict)
    body, attributes = codec.encode(event(), "sqs")
    decoded = codec.decode(body, attributes, CloudEvent)
    assert decoded.get_data() == {"a": 1} and decoded.get_id() == "1"
    assert decoded.get_extension("retries") == "3"  # strings in every string-typed binding


def test_amqp_timestamps_and_the_colon_prefix_are_read() -> None:
    attributes = {"cloudEvents:specversion": "1.0", "cloudEvents:type": "t", "cloudEvents:source": "/s",
                  "cloudEvents:id": "1", "cloudEvents:time": str(int(TIME.timestamp() * 1000))}
    decoded = CloudEventCodec().decode(b"", attributes, CloudEvent)
    assert decoded.get_time() == TIME and decoded.get_data() is None


@pytest.mark.parametrize("mode", ["Binary", "", "json"])
def test_an_unknown_mode_is_refused_naming_the_modes(mode: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match="'structured' or 'binary'"):
        CloudEventCodec(mode)  # type: ignore[arg-type]
    with pytest.raises(cloudqueue.InvalidArgument, match="'structured' or 'binary'"):
        to_message(event(), "sqs", mode)  # type: ignore[arg-type]


def test_a_value_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"expected a CloudEvent.*dict"):
        CloudEventCodec().encode({"type": "t"}, "sqs")


@pytest.mark.parametrize(("body", "attributes", "expected"), [
    (b"x", {}, "not a CloudEvent"),
    (b"x", {"content-type": "application/json"}, "not a CloudEvent"),
    (b"not json", {"content-type": "application/cloudevents+json"}, "not JSON"),
    (b"[1]", {"content-type": "application/cloudevents+json"}, "JSON object"),
    (b"x", {"content-type": "application/cloudevents+avro"}, "only the JSON event format"),
    (b'{"specversion": "1.0", "type": "t", "source": "/s", "id": "1", "time": "yesterday"}',
     {"content-type": "application/cloudevents+json"}, "'time' is not an RFC 3339"),
    (b'{"specversion": "1.0", "type": "t", "id": "1"}',
     {"content-type": "application/cloudevents+json"}, "source"),
    (b"", {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/s", "ce-id": "1",
           "ce-time": "2026-03-01T12:30:15"}, "no time zone"),
    (b"", {"ce-specversion": "1.0", "ce-type": "t", "ce-id": "1"}, "source"),
])
def test_what_is_not_a_valid_event_fails_to_decode_naming_the_problem(
    body: bytes, attributes: dict[str, str], expected: str
) -> None:
    with pytest.raises(DecodeError, match=expected) as info:
        CloudEventCodec().decode(body, attributes, CloudEvent)
    assert info.value.retryable is False
