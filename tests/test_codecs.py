"""Codecs: each built-in codec round-trips its values, names what failed on a bad payload
(never echoing the payload), and refuses types and values it cannot carry."""

from __future__ import annotations

import dataclasses
import datetime
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec
import pydantic
import pytest

import cloudqueue
from cloudqueue.codecs import (
    Codec,
    DataclassCodec,
    JsonCodec,
    MsgspecCodec,
    PydanticCodec,
    codec_for_type,
    codec_for_value,
)
from cloudqueue.codecs._choose import DECODERS, decoder_for_type
from cloudqueue.errors import DecodeError

T = TypeVar("T")


class Order(pydantic.BaseModel):
    id: int
    total: float
    customer: str


class Shipment(msgspec.Struct):
    id: int
    parcels: list[str]
    note: str | None = None


@dataclasses.dataclass
class Line:
    sku: str
    quantity: int


@dataclasses.dataclass
class Basket:
    id: int
    lines: list[Line]
    coupon: str | None = None
    tags: dict[str, Line] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Stamped:
    at: datetime.datetime


CASES: list[tuple[object, object, type[Codec]]] = [
    (Order(id=1, total=9.5, customer="ann"), Order, PydanticCodec),
    (Shipment(id=2, parcels=["a", "b"]), Shipment, MsgspecCodec),
    (Basket(3, [Line("apple", 2)], tags={"x": Line("pear", 1)}), Basket, DataclassCodec),
    ({"ids": [1, 2], "fast": True, "note": None}, dict[str, list[int] | bool | None], JsonCodec),
    ([1.5, 2], list[float], JsonCodec),
]


@pytest.mark.parametrize(("value", "kind", "codec_class"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_each_codec_is_chosen_by_type_and_round_trips(
    value: object, kind: object, codec_class: type[Codec]
) -> None:
    codec = codec_for_value(value)
    assert isinstance(codec, codec_class)
    assert codec_for_type(kind) is codec
    body, attributes = codec.encode(value, "memory")
    assert attributes == {"content-type": "application/json"}
    assert codec.decode(body, attributes, kind) == value  # type: ignore[arg-type]


def test_raw_annotations_have_no_codec() -> None:
    for kind in (bytes, str, cloudqueue.ReceivedMessage, cloudqueue.AsyncReceivedMessage):
        assert codec_for_type(kind) is None


@pytest.mark.parametrize(("body", "kind", "expected"), [
    (b'{"id": "x", "total": 1, "customer": "c"}', Order, "id: Input should be a valid integer"),
    (b'{"id": 1, "total": 1}', Order, "customer: Field required"),
    (b'{"id": "x", "parcels": []}', Shipment, "Expected `int`, got `str` - at `$.id`"),
    (b'{"id": 1, "lines": [{"sku": 5, "quantity": 1}]}', Basket, "$.lines[0].sku: expected a string"),
    (b'{"id": 1}', Basket, "missing field 'lines'"),
    (b'{"id": 1, "lines": [], "extra": 1}', Basket, "unknown field(s) extra"),
    (b'{"a": "b"}', dict[str, int], "$.a: expected an integer, got a string"),
    (b"[true]", list[float], "$[0]: expected a number, got a boolean"),
    (b"{not json", dict, "not JSON"),
    (b"\xff\xfe", Basket, "not JSON"),
    (b"{not json", Order, "Invalid JSON"),
])
def test_a_bad_payload_raises_decode_error_naming_type_and_problem(
    body: bytes, kind: Any, expected: str
) -> None:
    codec = codec_for_type(kind)
    assert codec is not None
    with pytest.raises(DecodeError) as raised:
        codec.decode(body, {}, kind)
    assert expected in str(raised.value)
    assert getattr(kind, "__name__", "dict") in str(raised.value)
    assert raised.value.retryable is False and raised.value.kind is kind
    assert raised.value.code is cloudqueue.ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("kind", [Order, Shipment, Basket])
def test_decode_errors_never_echo_the_payload(kind: Any) -> None:
    secret = "4111-1111-1111-1111"
    body = f'{{"id": "{secret}", "total": "{secret}", "lines": "{secret}", "parcels": 1}}'.encode()
    with pytest.raises(DecodeError) as raised:
        codec_for_type(kind).decode(body, {}, kind)  # type: ignore[union-attr]
    assert secret not in str(raised.value) and secret not in repr(raised.value)


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "application/xml"])
@pytest.mark.parametrize("kind", [Order, Shipment, Basket, dict])
def test_a_payload_that_says_it_is_not_json_is_refused_unparsed(content_type: str, kind: Any) -> None:
    with pytest.raises(DecodeError, match=f"cannot decode a '{content_type}' payload as"):
        codec_for_type(kind).decode(b"{}", {"content-type": content_type}, kind)  # type: ignore[union-attr]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/cloudevents+json"])
def test_json_content_types_with_parameters_or_suffixes_decode(content_type: str) -> None:
    body = b'{"id": 1, "total": 2, "customer": "c"}'
    assert PydanticCodec().decode(body, {"content-type": content_type}, Order).id == 1


@pytest.mark.parametrize(("kind", "named"), [
    (datetime.datetime, "datetime"), (set[int], "set[int]"), (tuple[int, str], "tuple[int, str]"),
    (dict[int, str], "dict[int, str]"),
])
def test_a_type_no_codec_reads_is_refused_by_name(kind: object, named: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"no codec decodes .*pydantic model") as raised:
        codec_for_type(kind)
    assert named in str(raised.value)


def test_a_dataclass_field_json_cannot_carry_is_named() -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"field Stamped.at of type datetime"):
        DataclassCodec().decode(b'{"at": "2024-01-01"}', {}, Stamped)


@pytest.mark.parametrize("value", [object(), {1, 2}, datetime.date(2024, 1, 1), None, 3.5, True])
def test_a_value_no_codec_encodes_is_refused_by_type(value: object) -> None:
    refused = r"body must be bytes or str, or a value a codec"
    with pytest.raises(cloudqueue.InvalidArgument, match=refused) as raised:
        codec_for_value(value)
    assert f"not {type(value).__name__}" in str(raised.value)


@pytest.mark.parametrize("value", [{"when": datetime.date(2024, 1, 1)}, [float("nan")]])
def test_a_json_value_json_cannot_hold_is_refused(value: object) -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"cannot encode .* as JSON"):
        JsonCodec().encode(value, "memory")


def test_each_codec_refuses_values_and_types_of_another() -> None:
    for codec, value in ((PydanticCodec(), {"a": 1}), (MsgspecCodec(), Order(id=1, total=1, customer="c")),
                         (DataclassCodec(), {"a": 1})):
        with pytest.raises(cloudqueue.InvalidArgument, match="codec encodes"):
            codec.encode(value, "memory")
        with pytest.raises(cloudqueue.InvalidArgument, match="cannot decode into"):
            codec.decode(b"{}", {}, Line if not isinstance(codec, DataclassCodec) else Order)


# -- prepared decoders (the per-message path of message.decode(Type)) --------------------


@pytest.mark.parametrize(("value", "kind", "codec_class"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_a_prepared_decoder_is_built_once_per_type_and_decodes_like_its_codec(
    value: object, kind: object, codec_class: type[Codec]
) -> None:
    decoder = decoder_for_type(kind)
    assert decoder is not None
    assert DECODERS[kind] is decoder and decoder_for_type(kind) is decoder  # prepared once, kept
    body, attributes = codec_class().encode(value, "memory")
    assert decoder(body, attributes) == value
    assert decoder(body, {}) == value  # no content type: a sender outside the library


@pytest.mark.parametrize("kind", [Order, Shipment, Basket, dict[str, int]])
def test_a_prepared_decoder_keeps_the_codecs_errors(kind: Any) -> None:
    decoder = decoder_for_type(kind)
    assert decoder is not None
    secret = "4111-1111-1111-1111"
    with pytest.raises(DecodeError) as raised:
        decoder(f'{{"id": "{secret}", "total": 1, "customer": 1, "parcels": 1}}'.encode(), {})
    assert getattr(kind, "__name__", "dict") in str(raised.value) and raised.value.kind is kind
    assert secret not in str(raised.value)
    for content_type in ("text/plain", "application/xml; charset=utf-8"):
        with pytest.raises(DecodeError, match=f"cannot decode a '{content_type}' payload as"):
            decoder(b"{}", {"content-type": content_type})


def test_prepared_decoders_for_raw_annotations_refused_and_unhashable_ones() -> None:
    assert decoder_for_type(bytes)(b"\xc3\xa9", {}) == b"\xc3\xa9"  # type: ignore[misc]
    assert decoder_for_type(str)(b"\xc3\xa9", {}) == "\u00e9"  # type: ignore[misc]
    assert decoder_for_type(cloudqueue.ReceivedMessage) is None  # the message is the payload
    assert DECODERS[cloudqueue.ReceivedMessage] is None
    with pytest.raises(cloudqueue.InvalidArgument, match="no codec decodes"):
        decoder_for_type(datetime.datetime)
    assert datetime.datetime not in DECODERS  # a refused type is not kept
    unhashable = Annotated[int, {"unit": "cm"}]
    with pytest.raises(TypeError):  # the table cannot keep it: decoder_for_type answers instead
        DECODERS[unhashable]
    with pytest.raises(cloudqueue.InvalidArgument, match="no codec decodes"):
        decoder_for_type(unhashable)


def test_a_pydantic_model_that_overrides_model_validate_json_keeps_its_override() -> None:
    class Legacy(pydantic.BaseModel):
        name: str

        @classmethod
        def model_validate_json(cls, json_data: Any, **options: Any) -> Legacy:
            return super().model_validate_json(json_data.replace(b"old", b"new"), **options)

    assert decoder_for_type(Legacy)(b'{"name": "old"}', {}) == Legacy(name="new")  # type: ignore[misc]


def test_a_pydantic_model_completed_after_its_first_decode_attempt_decodes() -> None:
    class Parcel(pydantic.BaseModel):
        label: Later  # defined below, on purpose: the model stays incomplete until rebuilt

    with pytest.raises(pydantic.errors.PydanticUserError, match="not fully defined"):
        decoder_for_type(Parcel)(b'{"label": {"text": "a"}}', {})  # type: ignore[misc]

    class Later(pydantic.BaseModel):
        text: str

    Parcel.model_rebuild(_types_namespace={"Later": Later})
    assert decoder_for_type(Parcel)(b'{"label": {"text": "a"}}', {}) == Parcel(label=Later(text="a"))  # type: ignore[misc]


def test_a_codec_of_the_users_own_gets_a_prepared_decoder_that_calls_decode() -> None:
    codec = Upper()
    decoder = codec.decoder(str)
    assert decoder(b"HELLO", {}) == "hello" and codec.decoded == 1


def test_optional_libraries_are_not_imported_by_json_and_dataclass_use() -> None:
    script = (
        "import sys, dataclasses, cloudqueue, cloudqueue.codecs as c\n"
        "@dataclasses.dataclass\nclass D:\n    x: int\n"
        "assert c.codec_for_type(D).decode(b'{\"x\": 1}', {}, D) == D(1)\n"
        "assert c.codec_for_value({'a': 1}).encode({'a': 1}, 'sqs')[0] == b'{\"a\":1}'\n"
        "print(sorted(m for m in ('pydantic', 'msgspec', 'cloudevents') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- through a real consumer -------------------------------------------------------------


class Upper(Codec):
    """A codec of the user's own: text upper-cased, counting decodes."""

    def __init__(self) -> None:
        self.decoded = 0

    def handles(self, kind: object) -> bool:
        return kind is str

    def encode(self, value: object, scheme: str) -> tuple[bytes, dict[str, str]]:
        return str(value).upper().encode(), {"content-type": "text/x-upper"}

    def decode(self, body: bytes, attributes: Mapping[str, str], kind: type[T]) -> T:
        self.decoded += 1
        return body.decode().lower()  # type: ignore[return-value]


def _received(url: str, body: bytes, attributes: dict[str, str],
              **consumer: Any) -> cloudqueue.ReceivedMessage:
    with cloudqueue.open_producer(url) as producer:
        producer.send(body, attributes=attributes)
    with cloudqueue.open_consumer(url, **consumer) as consumer_:
        (message,) = consumer_.receive(1, wait=5)
        message.ack()
    return message


def test_a_received_message_decodes_by_type_and_reports_its_content_type() -> None:
    url = f"memory://codecs-{time.monotonic_ns()}"
    cloudqueue.declare(url)
    body, attributes = PydanticCodec().encode(Order(id=4, total=1.0, customer="d"), "memory")
    message = _received(url, body, {**attributes, "kind": "order"})
    assert message.content_type == "application/json"
    assert message.decode(Order) == Order(id=4, total=1.0, customer="d")
    assert message.decode(dict[str, int | float | str])["customer"] == "d"  # type: ignore[index]
    assert message.decode(bytes) == body and message.decode(str) == body.decode()
    with pytest.raises(DecodeError, match="not a valid Shipment"):
        message.decode(Shipment)
    plain = _received(url, b"raw", {})
    assert plain.content_type is None and plain.decode(bytes) == b"raw"


def test_a_received_message_from_an_async_consumer_decodes_too() -> None:
    import asyncio

    url = f"memory://codecs-async-{time.monotonic_ns()}"
    cloudqueue.declare(url)

    async def main() -> Shipment:
        async with cloudqueue.aio.open_producer(url) as producer:
            body, attributes = MsgspecCodec().encode(Shipment(id=5, parcels=["p"]), "memory")
            await producer.send(body, attributes=attributes)
        async with cloudqueue.aio.open_consumer(url) as consumer:
            (message,) = await consumer.receive(1, wait=5)
            await message.ack()
            assert message.content_type == "application/json"
            return message.decode(Shipment)

    assert asyncio.run(main()) == Shipment(id=5, parcels=["p"])


def test_send_encodes_values_and_codec_arguments_choose_the_format() -> None:
    url = f"memory://codecs-api-{time.monotonic_ns()}"
    cloudqueue.declare(url)
    upper = Upper()
    with cloudqueue.open_producer(url) as producer:
        producer.send(Order(id=6, total=1.5, customer="e"), attributes={"kind": "order"})
        producer.send({"a": 1}, attributes={"content-type": "application/vnd.example+json"})
    with cloudqueue.open_producer(url, codec=upper) as producer:
        producer.send(42)  # a producer's own codec encodes any value
    with cloudqueue.open_consumer(url, codec=upper) as consumer:
        got = []
        while len(got) < 3:
            got.extend(consumer.receive(3, wait=5))
        for message in got:
            message.ack()
    order, value, number = got
    assert order.attributes == {"content-type": "application/json", "kind": "order"}
    assert order.decode(bytes) == b'{"id":6,"total":1.5,"customer":"e"}'
    assert value.content_type == "application/vnd.example+json"  # the caller's own wins
    assert number.body == b"42" and number.content_type == "text/x-upper"
    assert number.decode(str) == "42" and upper.decoded == 0  # bytes/str: the body as it is
    assert order.decode(Order) == "{\"id\":6,\"total\":1.5,\"customer\":\"e\"}"  # through Upper
    assert upper.decoded == 1


@pytest.mark.parametrize("opener", [cloudqueue.open_producer, cloudqueue.open_consumer,
                                    cloudqueue.aio.open_producer, cloudqueue.aio.open_consumer])
def test_a_codec_argument_that_is_not_a_codec_is_refused(opener: Any) -> None:
    expected = r"codec must be None or a cloudqueue.codecs.Codec, not the class JsonCodec: pass an instance"
    with pytest.raises(cloudqueue.InvalidArgument, match=expected):
        opener("memory://codecs-refused", codec=JsonCodec)
    with pytest.raises(cloudqueue.InvalidArgument, match=r"codec must be None or .*, not str"):
        opener("memory://codecs-refused", codec="json")


def test_async_producer_sends_values() -> None:
    import asyncio

    url = f"memory://codecs-aio-send-{time.monotonic_ns()}"
    cloudqueue.declare(url)

    async def main() -> Basket:
        async with cloudqueue.aio.open_producer(url) as producer:
            await producer.send(Basket(1, [Line("kiwi", 3)]))
        async with cloudqueue.aio.open_consumer(url) as consumer:
            (message,) = await consumer.receive(1, wait=5)
            await message.ack()
            return message.decode(Basket)

    assert asyncio.run(main()) == Basket(1, [Line("kiwi", 3)])
