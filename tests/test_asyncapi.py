"""cloudqueue.asyncapi: documents of worker apps, checked against the official AsyncAPI
3.0.0 JSON Schema (shipped in the package) and against the payloads they describe."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import sys
from collections.abc import Callable
from typing import Any, Literal

import jsonschema
import msgspec
import pydantic
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from cloudqueue.asyncapi import build_document, spec_schema, validate
from cloudqueue.asyncapi._payloads import payload_for
from cloudqueue.asyncapi._typing_schema import typing_schema
from cloudqueue.errors import InvalidArgument


# Stand-ins with exactly the fields the document reads of App, Route and Publication.
@dataclasses.dataclass
class _Route:
    url: str
    handler: Callable[..., Any]
    payload_type: object | None


@dataclasses.dataclass
class _Publication:
    url: str
    kind: object
    description: str | None = None


@dataclasses.dataclass
class _App:
    routes: list[_Route]
    publications: list[_Publication] = dataclasses.field(default_factory=list)


class Line(pydantic.BaseModel):
    sku: str
    quantity: int = pydantic.Field(ge=1)


class Order(pydantic.BaseModel):
    """An order placed in the shop."""

    id: int
    lines: list[Line]
    placed: datetime.datetime
    pair: tuple[int, str] = (0, "")


class Shipped(msgspec.Struct):
    order_id: int
    carrier: str


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Part:
    name: str
    colour: Colour


@dataclasses.dataclass
class Kit:
    """A kit of parts."""

    parts: list[Part]
    note: str | None = None
    made: datetime.date | None = None
    size: Literal["s", "m"] = "s"
    tags: dict[str, int] = dataclasses.field(default_factory=dict)


def take_order(order: Order) -> None:
    """Reserve stock for an order.

    More text that is not the summary."""


def raw(message: object) -> None:
    pass


def _document(*routes: _Route, publications: tuple[_Publication, ...] = ()) -> dict[str, Any]:
    return build_document(_App(list(routes), list(publications)), title="shop", version="2.1.0")


def _official_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(spec_schema())


def _payload_validator(document: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    """Validates instances against a message's payload, resolving #/components/... in ``document``."""
    return jsonschema.Draft7Validator({**document, "$ref": f"#/components/messages/{message}/payload"})


EVERY_PROVIDER = (
    _Route("sqs://orders.fifo?region=eu-west-1", take_order, Order),
    _Route("sns://events?subscription=billing&region=eu-west-1", raw, Shipped),
    _Route("pubsub://shop-project/kits?subscription=worker", raw, Kit),
    _Route("azuresb://shop-ns/parts?subscription=audit", raw, None),
    _Route("amqp://127.0.0.1:5672/shop?queue=jobs", raw, dict[str, int]),
    _Route("amqp://127.0.0.1:5672/shop?topic=news&subscription=reader", raw, list[Line]),
    _Route("memory://cloudevents", raw, CloudEvent),
    _Route("sqlite:///shop.db?queue=returns", raw, str),
)


def test_a_document_of_every_provider_and_payload_kind_is_valid_asyncapi_3() -> None:
    document = _document(*EVERY_PROVIDER, publications=(_Publication("sns://events", Shipped, "shipments"),))
    errors = [error.message for error in _official_validator().iter_errors(document)]
    assert errors == []
    validate(document)  # the library's own check agrees
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {"title": "shop", "version": "2.1.0"}
    assert len(document["channels"]) == len(EVERY_PROVIDER) + 1  # the topic itself for the publication
    assert sorted(op["action"] for op in document["operations"].values()) == ["receive"] * 8 + ["send"]


def test_validate_names_where_a_document_breaks_the_schema() -> None:
    document = _document(EVERY_PROVIDER[0])
    document["operations"]["take_order"]["action"] = "publish"  # AsyncAPI 2 wording
    with pytest.raises(InvalidArgument, match=r"not a valid AsyncAPI 3.0.0 .*/operations/take_order"):
        validate(document)


def test_the_receive_operation_of_a_handler_refers_to_its_channel_and_message() -> None:
    document = _document(EVERY_PROVIDER[0])
    operation = document["operations"]["take_order"]
    assert operation == {
        "action": "receive",
        "channel": {"$ref": "#/channels/orders.fifo"},
        "messages": [{"$ref": "#/channels/orders.fifo/messages/Order"}],
        "summary": "Reserve stock for an order.",
    }
    channel = document["channels"]["orders.fifo"]
    assert channel["address"] == "orders.fifo"
    assert channel["messages"] == {"Order": {"$ref": "#/components/messages/Order"}}
    assert channel["bindings"] == {"sqs": {"queue": {"name": "orders.fifo", "fifoQueue": True},
                                           "bindingVersion": "0.2.0"}}
    assert document["servers"][channel["servers"][0]["$ref"].split("/")[-1]] == {
        "host": "sqs.eu-west-1.amazonaws.com", "protocol": "sqs"}


def test_a_pydantic_payload_schema_accepts_its_models_and_rejects_what_they_reject() -> None:
    document = _document(EVERY_PROVIDER[0])
    message = document["components"]["messages"]["Order"]
    assert message["contentType"] == "application/json"
    assert message["description"] == "An order placed in the shop."
    assert set(document["components"]["schemas"]) == {"Order", "Line"}  # nested model shared
    check = _payload_validator(document, "Order")
    good = Order(id=1, lines=[Line(sku="apple", quantity=2)], placed=datetime.datetime(2024, 5, 1),
                 pair=(1, "a"))
    assert list(check.iter_errors(json.loads(good.model_dump_json()))) == []
    too_few = {"sku": "apple", "quantity": 0}
    assert not check.is_valid({"id": 1, "lines": [too_few], "placed": "2024-05-01T00:00:00"})
    assert not check.is_valid({"id": 1, "lines": [], "placed": "x", "pair": [1, 2]})  # tuple types kept
    assert not check.is_valid({"lines": [], "placed": "2024-05-01T00:00:00"})


def test_a_msgspec_payload_schema_accepts_its_encoded_structs() -> None:
    document = _document(EVERY_PROVIDER[1])
    check = _payload_validator(document, "Shipped")
    assert check.is_valid(json.loads(msgspec.json.encode(Shipped(order_id=3, carrier="ups"))))
    assert not check.is_valid({"order_id": "3", "carrier": "ups"})


def test_a_dataclass_payload_schema_without_pydantic_comes_from_cloudqueues_own_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)  # `import pydantic` now fails
    payload = payload_for(Kit)
    assert payload.schema == {"$ref": "#/components/schemas/Kit"}
    assert payload.definitions["Kit"]["description"] == "A kit of parts."
    assert set(payload.definitions) == {"Kit", "Part"}
    document = {"components": {"schemas": payload.definitions}}
    check = jsonschema.Draft7Validator({**document, "$ref": "#/components/schemas/Kit"})
    kit = Kit(parts=[Part("wheel", Colour.RED)], made=datetime.date(2024, 1, 2), tags={"a": 1})
    as_json = json.loads(
        json.dumps(dataclasses.asdict(kit), default=lambda value: getattr(value, "value", str(value))))
    assert list(check.iter_errors(as_json)) == []
    assert not check.is_valid({**as_json, "size": "xl"})  # Literal
    assert not check.is_valid({**as_json, "parts": [{"name": "wheel", "colour": "green"}]})  # enum
    assert not check.is_valid({**as_json, "tags": {"a": "one"}})
    assert not check.is_valid({"note": None})  # parts is required


def test_a_dataclass_payload_with_pydantic_installed_validates_too() -> None:
    document = _document(EVERY_PROVIDER[2])
    assert list(_official_validator().iter_errors(document)) == []
    check = _payload_validator(document, "Kit")
    assert check.is_valid({"parts": [{"name": "wheel", "colour": "blue"}]})
    assert not check.is_valid({"parts": [{"name": "wheel", "colour": "green"}]})


def test_the_own_generator_refuses_a_type_it_cannot_describe_and_names_it() -> None:
    with pytest.raises(InvalidArgument, match=r"cannot describe .*bytearray.* without pydantic"):
        typing_schema(bytearray, {}, "#/{model}")
    with pytest.raises(InvalidArgument, match=r"dict\[int, str\].*JSON object keys are strings"):
        typing_schema(dict[int, str], {}, "#/{model}")


def test_a_cloudevent_handler_gets_the_structured_cloudevent_schema() -> None:
    document = _document(EVERY_PROVIDER[6])
    message = document["components"]["messages"]["CloudEvent"]
    assert message["contentType"] == "application/cloudevents+json"
    check = _payload_validator(document, "CloudEvent")
    event = CloudEvent(attributes={"type": "order.placed", "source": "/shop", "id": "e1",
                                   "specversion": "1.0", "datacontenttype": "application/json",
                                   "shopext": "x"}, data={"id": 1})
    structured = json.loads(JSONFormat().write(event))  # the official SDK's JSON format
    assert list(check.iter_errors(structured)) == []
    assert not check.is_valid({k: v for k, v in structured.items() if k != "source"})
    assert not check.is_valid({**structured, "Bad-Name": "x"})


def test_raw_handlers_have_a_message_without_a_schema_and_plain_types_get_a_name() -> None:
    document = _document(EVERY_PROVIDER[3], EVERY_PROVIDER[4], EVERY_PROVIDER[5])
    messages = document["components"]["messages"]
    assert messages["Raw"]["contentType"] == "application/octet-stream" and "payload" not in messages["Raw"]
    assert messages["DictOfStrAndInt"]["payload"] == {
        "type": "object", "additionalProperties": {"type": "integer"}}
    assert messages["ListOfLine"]["payload"]["items"] == {"$ref": "#/components/schemas/Line"}


def test_bindings_where_asyncapi_has_them_and_the_url_facts_everywhere() -> None:
    channels = _document(*EVERY_PROVIDER)["channels"]
    assert channels["events.billing"]["bindings"]["sns"] == {
        "name": "events", "ordering": {"type": "standard"}, "bindingVersion": "0.1.0"}
    assert channels["jobs"]["bindings"]["amqp"] == {
        "is": "queue", "queue": {"name": "jobs", "vhost": "shop"}, "bindingVersion": "0.3.0"}
    assert channels["news.reader"]["bindings"]["amqp"]["exchange"] == {
        "name": "news", "type": "fanout", "vhost": "shop"}
    assert channels["news.reader"]["x-cloudqueue"]["queue"] == "news.reader"
    assert "bindings" not in channels["kits.worker"]  # Pub/Sub's binding needs a schema resource
    assert channels["kits.worker"]["x-cloudqueue"] == {
        "url": "pubsub://shop-project/kits?subscription=worker", "provider": "pubsub",
        "project": "shop-project", "subscription": "worker"}
    assert channels["parts.audit"]["x-cloudqueue"]["subscription"] == "audit"
    assert channels["returns"]["x-cloudqueue"]["database"] == "shop.db"
    text = _document(EVERY_PROVIDER[7])["components"]["messages"]["Text"]
    assert (text["contentType"], text["payload"]) == ("text/plain; charset=utf-8", {"type": "string"})


def test_an_sns_subscription_handler_names_its_queue_in_the_operation_bindings() -> None:
    document = _document(EVERY_PROVIDER[1])
    (operation,) = document["operations"].values()
    assert operation["bindings"] == {
        "sns": {"consumers": [{"protocol": "sqs", "endpoint": {"name": "events-billing"},
                               "rawMessageDelivery": True}], "bindingVersion": "0.1.0"},
        "sqs": {"queues": [{"name": "events-billing", "fifoQueue": False}], "bindingVersion": "0.2.0"},
    }


def test_a_publication_and_a_handler_on_one_url_share_the_channel_and_the_message() -> None:
    document = _document(_Route("memory://orders", take_order, Order),
                         publications=(_Publication("memory://orders", Order, "Orders the shop places."),))
    assert list(document["channels"]) == ["orders"]
    assert list(document["components"]["messages"]) == ["Order"]
    send = document["operations"]["send-orders"]
    assert send["action"] == "send" and send["summary"] == "Orders the shop places."
    assert send["messages"] == document["operations"]["take_order"]["messages"]


def test_two_different_types_with_one_name_are_refused_by_name() -> None:
    # Same name as the module's Line, other fields.
    other_line = pydantic.create_model("Line", text=(str, ...))

    with pytest.raises(InvalidArgument, match="'Line'"):
        _document(_Route("memory://a", raw, list[Line]), _Route("memory://b", raw, other_line))


def test_secrets_in_urls_never_reach_the_document() -> None:
    secrets = ("hunter2-password", "SharedKeyValue0123", "aws-secret-in-endpoint")
    document = _document(
        _Route("amqp://admin:hunter2-password@127.0.0.1:5672/shop?queue=jobs", raw, None),
        _Route("azuresb://shop-ns/parts?connection_string=Endpoint%3Dsb%3A%2F%2Fshop-ns.servicebus.windows.net"
               "%2F%3BSharedAccessKeyName%3Droot%3BSharedAccessKey%3DSharedKeyValue0123", raw, None),
        _Route("sqs://orders?endpoint_url=http%3A%2F%2Fkey%3Aaws-secret-in-endpoint%40127.0.0.1%3A4566",
               raw, None),
    )
    text = json.dumps(document)
    assert [secret for secret in secrets if secret in text] == []
    assert "admin" not in text
    assert document["servers"]["sqs-127-0-0-1-4566"]["host"] == "127.0.0.1:4566"
    assert list(_official_validator().iter_errors(document)) == []


def test_channels_on_two_providers_with_one_name_stay_apart() -> None:
    document = _document(_Route("memory://orders", raw, None), _Route("sqs://orders", raw, None))
    assert sorted(document["channels"]) == ["orders", "sqs-orders"]
    assert document["channels"]["sqs-orders"]["x-cloudqueue"]["provider"] == "sqs"
