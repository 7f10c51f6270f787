"""Typed messages: pydantic models, msgspec Structs, dataclasses and JSON values round-trip
through a producer and a consumer with their content type, and a worker dead-letters a
payload that does not decode at its first attempt.

Needs pydantic and msgspec (``cloudqueue[pydantic]``, ``cloudqueue[msgspec]``); they are
imported when a case runs, so importing the suite stays cheap. The types are defined in
the cases: this module does not postpone annotations, so a typed handler's annotation is
the class itself and resolves wherever the class was made.
"""

import dataclasses

import cloudqueue
from cloudqueue.codecs import JSON_CONTENT_TYPE, Codec, JsonCodec

from ._base import SuiteBase, collect
from ._harness import Destination, Harness

__all__ = ["TypedMessages"]


def _one(dest: Destination, value: object, codec: Codec | None = None) -> cloudqueue.ReceivedMessage:
    """Send ``value`` and receive it back (acked)."""
    with cloudqueue.open_producer(dest.producer_url) as producer:
        producer.send(value)
    with cloudqueue.open_consumer(dest.consumer_url, codec=codec) as consumer:
        got = collect(consumer, 1, timeout=30)
    assert len(got) == 1
    assert got[0].content_type == JSON_CONTENT_TYPE
    return got[0]


class TypedMessages(SuiteBase):
    def test_pydantic_model_round_trip(self, dest: Destination) -> None:
        import pydantic

        class Order(pydantic.BaseModel):
            id: int
            total: float
            lines: list[str]

        sent = Order(id=7, total=9.5, lines=["apple", "pear"])
        message = _one(dest, sent)
        assert message.decode(Order) == sent

    def test_msgspec_struct_round_trip(self, dest: Destination) -> None:
        import msgspec

        class Order(msgspec.Struct):
            id: int
            total: float
            note: str | None = None

        sent = Order(id=8, total=1.25, note="gift wrap: ünïcode")
        assert _one(dest, sent).decode(Order) == sent

    def test_dataclass_round_trip(self, dest: Destination) -> None:
        @dataclasses.dataclass
        class Line:
            sku: str
            quantity: int

        @dataclasses.dataclass
        class Order:
            id: int
            lines: list[Line]

        sent = Order(id=9, lines=[Line("apple", 2), Line("pear", 1)])
        assert _one(dest, sent).decode(Order) == sent

    def test_json_value_round_trip_through_the_consumers_codec(self, dest: Destination) -> None:
        sent = {"ids": [1, 2, 3], "express": True, "note": None}
        message = _one(dest, sent, codec=JsonCodec())
        assert message.decode(dict) == sent

    def test_worker_dead_letters_an_undecodable_payload_at_the_first_attempt(
        self, make: object, harness: Harness
    ) -> None:
        import pydantic

        from cloudqueue.testing.worker import serve_until
        from cloudqueue.wire import DEAD_LETTER_REASON
        from cloudqueue.worker import App, FailurePolicy

        class Order(pydantic.BaseModel):
            id: int

        limited = harness.supports_dead_letter
        dest: Destination = (
            make(dead_letter_after=harness.dead_letter_after_for_tests)  # type: ignore[operator]
            if limited else make()  # type: ignore[operator]
        )
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b'{"id": "seven"}', attributes={"content-type": JSON_CONTENT_TYPE})
        ran: list[object] = []
        app = App(policy=FailurePolicy(max_attempts=10, initial_delay=5.0, jitter=0.0))

        @app.handler(dest.consumer_url)
        def handle(order: Order, message: cloudqueue.ReceivedMessage) -> None:
            ran.append(order)

        if not limited:
            # Nothing to move it to: nacked as any failure for good (redelivered at once
            # where the provider cannot delay a nack, so it may fail more than once).
            serve_until(app, lambda: app.counters()["retried"] >= 1)
            assert ran == [] and app.counters()["dead_lettered"] == 0
            return
        serve_until(app, lambda: app.counters()["dead_lettered"] == 1)
        assert ran == []
        counters = app.counters()
        assert counters["failed"] == 1 and counters["processed"] == 0
        assert counters["retried"] == 0  # no retries burned
        with cloudqueue.open_consumer(cloudqueue.dead_letter_url(dest.consumer_url)) as dead:
            (letter,) = collect(dead, 1, timeout=30)
        assert letter.body == b'{"id": "seven"}'
        reason = letter.attributes.get(DEAD_LETTER_REASON, "")
        assert reason.startswith("undecodable payload: ") and "Order" in reason and "id" in reason
