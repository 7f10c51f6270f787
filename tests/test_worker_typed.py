"""Typed handlers on the worker (memory and SQLite) and on the serverless adapters: the
handler gets the decoded value (and the message when it asks), and a payload that does not
decode is dead-lettered at its first attempt, or reported failed where a trigger cannot
dead-letter, without the handler running."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pydantic
import pytest
from test_serverless import sb_message, sqs_record

import cloudqueue
from cloudqueue.codecs import codec_for_value
from cloudqueue.errors import DecodeError
from cloudqueue.serverless import HandlerFailed, aws_lambda, azure_functions
from cloudqueue.testing.worker import serve_until
from cloudqueue.wire import DEAD_LETTER_REASON
from cloudqueue.worker import App, FailurePolicy

_names = itertools.count()
#: Retries of an ordinary failure would wait 5 s: a dead letter within the test proves
#: the undecodable payload skipped them.
SLOW_RETRIES = FailurePolicy(max_attempts=10, initial_delay=5.0, jitter=0.0)


class Order(pydantic.BaseModel):
    id: int
    total: float


class Shipment(msgspec.Struct):
    id: int
    parcels: list[str]


@dataclasses.dataclass
class Refund:
    order_id: int
    reason: str


@pytest.fixture(params=["memory", "sqlite"])
def make_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., str]:
    def make(dead_letter_after: int | None = 5) -> str:
        name = f"typed{next(_names)}"
        if request.param == "memory":
            url = f"memory://{name}-{time.monotonic_ns()}"
        else:
            url = f"sqlite:///{tmp_path}/typed.db?queue={name}"
        cloudqueue.declare(url, lease=5.0, dead_letter_after=dead_letter_after)
        return url

    return make


def send(url: str, *values: object) -> None:
    """Each value encoded by the codec its type chooses (raw bytes as they are)."""
    with cloudqueue.open_producer(url) as producer:
        for value in values:
            if isinstance(value, bytes):
                producer.send(value, attributes={"content-type": "application/json"})
            else:
                body, attributes = codec_for_value(value).encode(value, url.split(":", 1)[0])
                producer.send(body, attributes=attributes)


def drain(url: str) -> list[cloudqueue.ReceivedMessage]:
    with cloudqueue.open_consumer(url) as consumer:
        got = consumer.receive(100, wait=0.5)
        for message in got:
            message.ack()
    return got


def test_sync_handler_gets_the_model_and_the_message(make_url: Callable[..., str]) -> None:
    url = make_url()
    send(url, Order(id=1, total=2.5), Order(id=2, total=3.0))
    got: list[tuple[Order, str | None]] = []
    app = App()

    @app.handler(url)
    def handle(order: Order, message: cloudqueue.ReceivedMessage) -> None:
        got.append((order, message.content_type))

    serve_until(app, lambda: app.counters()["processed"] == 2)
    assert sorted(got, key=lambda pair: pair[0].id) == [
        (Order(id=1, total=2.5), "application/json"), (Order(id=2, total=3.0), "application/json"),
    ]


def test_async_handler_gets_the_struct_alone(make_url: Callable[..., str]) -> None:
    url = make_url()
    send(url, Shipment(id=3, parcels=["a", "b"]))
    got: list[Shipment] = []
    app = App()

    @app.handler(url)
    async def handle(shipment: Shipment) -> None:
        await asyncio.sleep(0)
        got.append(shipment)

    serve_until(app, lambda: app.counters()["processed"] == 1)
    assert got == [Shipment(id=3, parcels=["a", "b"])]


def test_dataclass_json_and_raw_annotations(make_url: Callable[..., str]) -> None:
    refunds, totals, raw = make_url(), make_url(), make_url()
    send(refunds, Refund(order_id=4, reason="late"))
    send(totals, {"apples": 3, "pears": 1})
    send(raw, b"\x00bytes")
    got: list[object] = []
    app = App()
    app.add_handler(refunds, lambda refund, *rest: got.append(refund))  # unannotated: the message
    app.add_handler(totals, _count_totals(got))
    app.add_handler(raw, _raw_body(got))
    serve_until(app, lambda: app.counters()["processed"] == 3)
    messages = [item for item in got if isinstance(item, cloudqueue.ReceivedMessage)]
    assert len(messages) == 1 and messages[0].decode(Refund) == Refund(order_id=4, reason="late")
    assert {"apples": 3, "pears": 1} in got and b"\x00bytes" in got


def _count_totals(got: list[object]) -> Callable[[dict[str, int]], None]:
    def handle(totals: dict[str, int]) -> None:
        got.append(totals)
    return handle


def _raw_body(got: list[object]) -> Callable[[bytes], None]:
    def handle(body: bytes) -> None:
        got.append(body)
    return handle


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_an_undecodable_payload_is_dead_lettered_at_the_first_attempt(
    make_url: Callable[..., str], asynchronous: bool
) -> None:
    url = make_url()
    send(url, b'{"id": "seven", "total": 1}', Order(id=8, total=1.0), b"not json")
    ran: list[Order] = []
    app = App(policy=SLOW_RETRIES)
    if asynchronous:
        async def handle(order: Order) -> None:
            ran.append(order)
        app.add_handler(url, handle)
    else:
        def handle_sync(order: Order) -> None:
            ran.append(order)
        app.add_handler(url, handle_sync)

    serve_until(app, lambda: app.counters()["dead_lettered"] == 2 and app.counters()["processed"] == 1)
    assert ran == [Order(id=8, total=1.0)]
    assert app.counters()["retried"] == 0
    dead = sorted(drain(cloudqueue.dead_letter_url(url)), key=lambda m: m.body)
    assert [m.body for m in dead] == [b"not json", b'{"id": "seven", "total": 1}']
    reasons = [m.attributes[DEAD_LETTER_REASON] for m in dead]
    assert reasons[0].startswith("undecodable payload: the body is not a valid Order: $: Invalid JSON")
    assert reasons[1].startswith("undecodable payload: the body is not a valid Order: id: Input should")
    assert "seven" not in reasons[1]


def test_without_dead_letters_an_undecodable_payload_is_nacked_like_any_failure_for_good() -> None:
    url = f"memory://typed-nodlq-{time.monotonic_ns()}"
    cloudqueue.declare(url, lease=5.0)  # memory queues dead-letter only with a policy
    send(url, b"[]")
    app = App(policy=SLOW_RETRIES)
    ran: list[Order] = []

    @app.handler(url)
    def handle(order: Order) -> None:
        ran.append(order)

    if cloudqueue.capabilities(url).dead_letter:
        serve_until(app, lambda: app.counters()["dead_lettered"] == 1)
    else:
        serve_until(app, lambda: app.counters()["retried"] == 1)
    assert ran == [] and app.counters()["failed"] == 1


def test_a_handler_whose_payload_type_has_no_codec_is_refused_at_registration() -> None:
    def handle(when: set[int]) -> None: ...

    with pytest.raises(cloudqueue.InvalidArgument, match=r"handler .*handle: no codec decodes set\[int\]"):
        App().add_handler("memory://typed-refused", handle)


def test_an_annotation_that_cannot_be_resolved_is_refused_at_registration() -> None:
    def handle(order: Undefined) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(cloudqueue.InvalidArgument, match=r"cannot resolve the annotation 'Undefined'"):
        App().add_handler("memory://typed-unresolved", handle)


def test_routes_carry_the_payload_type_and_publications_are_recorded() -> None:
    app = App()

    async def typed(order: Order, message: cloudqueue.AsyncReceivedMessage) -> None: ...

    def raw(message: cloudqueue.ReceivedMessage) -> None: ...

    app.add_handler("memory://typed-a", typed)
    app.add_handler("memory://typed-b", raw)
    app.add_handler("memory://typed-c", lambda message: None)
    assert [route.payload_type for route in app.routes] == [Order, None, None]
    app.publishes("memory://shipments", Shipment, description="parcels leaving")
    app.publishes("amqp://user:s3cr3t-pw@127.0.0.1/orders", Order)
    assert [(p.url, p.kind, p.description) for p in app.publications] == [
        ("memory://shipments", Shipment, "parcels leaving"),
        ("amqp://user:s3cr3t-pw@127.0.0.1/orders", Order, None),
    ]
    assert "s3cr3t-pw" not in repr(app.publications[1]) and "Order" in repr(app.publications[1])
    with pytest.raises(cloudqueue.InvalidArgument, match=r"no codec decodes set\[int\]"):
        app.publishes("memory://x", set[int])  # type: ignore[arg-type]
    with pytest.raises(cloudqueue.InvalidArgument, match="needs a queue or topic URL"):
        app.publishes("shipments", Shipment)


# -- serverless adapters ---------------------------------------------------------------


def test_lambda_typed_handler_and_an_undecodable_record() -> None:
    got: list[tuple[Order, str]] = []

    def handle(order: Order, message: cloudqueue.ReceivedMessage) -> None:
        got.append((order, message.id))

    good_body, attributes = codec_for_value(Order(id=1, total=2.0)).encode(Order(id=1, total=2.0), "sqs")
    event = {"Records": [sqs_record("good", good_body, attributes=attributes),
                         sqs_record("bad", b'{"id": []}', attributes=attributes)]}
    assert aws_lambda(handle)(event, None) == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert got == [(Order(id=1, total=2.0), "good")]


def test_lambda_async_typed_handler() -> None:
    got: list[Shipment] = []

    async def handle(shipment: Shipment) -> None:
        got.append(shipment)

    body, attributes = codec_for_value(Shipment(id=2, parcels=[])).encode(Shipment(id=2, parcels=[]), "sqs")
    event = {"Records": [sqs_record("s", body, attributes=attributes), sqs_record("t", b"{}")]}
    assert aws_lambda(handle)(event, None) == {"batchItemFailures": [{"itemIdentifier": "t"}]}
    assert got == [Shipment(id=2, parcels=[])]


def test_azure_functions_typed_handler_fails_an_undecodable_message_without_running() -> None:
    got: list[Refund] = []

    def handle(refund: Refund) -> None:
        got.append(refund)

    function = azure_functions(handle)
    function(sb_message(b'{"order_id": 3, "reason": "damaged"}', 1, properties={}))
    with pytest.raises(HandlerFailed, match="sb-2") as failed:
        function(sb_message(b'{"order_id": "x"}', 2, properties={}))
    assert isinstance(failed.value.__cause__, DecodeError)
    assert got == [Refund(order_id=3, reason="damaged")]
