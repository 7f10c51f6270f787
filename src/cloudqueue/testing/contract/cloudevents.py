"""CloudEvents in binary and structured mode round-trip on the provider's binding.

Needs the ``cloudevents`` SDK (``cloudqueue[cloudevents]``); it is imported when a case
runs, so importing the suite stays cheap and works without it.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import pytest

import cloudqueue

from ._base import SuiteBase, collect
from ._harness import Destination

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

__all__ = ["EVENT_TIME", "CloudEvents", "assert_same_event", "sample_event"]

#: The sample events' time: milliseconds only, which every binding keeps exactly (AMQP
#: timestamps carry milliseconds).
EVENT_TIME = datetime.datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=datetime.UTC)


def sample_event(data: Any, *, source: str = "/contract/shop", **attributes: Any) -> CloudEvent:
    """An order event with every kind of context attribute: required ones, ``time``,
    ``subject`` and an extension (``tenant``); ``attributes`` add or override."""
    from cloudevents.core.v1.event import CloudEvent

    return CloudEvent(
        {"type": "com.example.order.placed", "source": source, "id": "order-7",
         "time": EVENT_TIME, "subject": "orders/7", "tenant": "acme", **attributes},
        data,
    )


def assert_same_event(got: CloudEvent, sent: CloudEvent) -> None:
    """The same context attributes and the same data."""
    assert got.get_attributes() == sent.get_attributes()
    assert got.get_data() == sent.get_data()


class CloudEvents(SuiteBase):
    def _round_trip(
        self, dest: Destination, event: CloudEvent, mode: str | None
    ) -> cloudqueue.ReceivedMessage:
        from cloudqueue.cloudevents import to_message

        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(to_message(event, dest.producer_url, mode))  # type: ignore[arg-type]
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 1, timeout=30)
        assert len(got) == 1
        return got[0]

    def test_cloudevent_binary_round_trip(self, dest: Destination) -> None:
        from cloudqueue.cloudevents import binding_for, from_received, to_message

        event = sample_event({"order": 7, "total": 9.5}, datacontenttype="application/json")
        outgoing = to_message(event, dest.producer_url, "binary")
        with cloudqueue.open_producer(dest.producer_url) as producer:
            budget = producer.capabilities.limits.max_attributes
            if len(outgoing.attributes) > budget:
                # Binary mode spends one attribute per context attribute: past the
                # provider's budget (SNS: 7) the send is refused up front, by name.
                with pytest.raises(cloudqueue.InvalidArgument, match=rf"at most {budget}"):
                    producer.send(outgoing)
                return
        message = self._round_trip(dest, event, "binary")
        prefix = binding_for(dest.producer_url).prefix
        # The binding's own wire form: every context attribute under its prefix, the
        # data's media type as the message's content type, the data alone as the body.
        assert message.attributes[prefix + "id"] == "order-7"
        assert message.attributes[prefix + "tenant"] == "acme"
        assert message.attributes["content-type"] == "application/json"
        assert message.body == b'{"order": 7, "total": 9.5}'
        assert_same_event(from_received(message), event)

    def test_cloudevent_structured_round_trip(self, dest: Destination) -> None:
        from cloudqueue.cloudevents import STRUCTURED_CONTENT_TYPE, from_received

        event = sample_event(b"\x00\xffbinary payload", datacontenttype="application/octet-stream")
        message = self._round_trip(dest, event, "structured")
        assert message.attributes["content-type"] == STRUCTURED_CONTENT_TYPE
        assert not any(name.startswith(("ce-", "cloudEvents")) for name in message.attributes)
        assert_same_event(from_received(message), event)

    def test_default_mode_round_trips(self, dest: Destination) -> None:
        from cloudqueue.cloudevents import from_received

        event = sample_event("plain text data", datacontenttype="text/plain")
        assert_same_event(from_received(self._round_trip(dest, event, None)), event)

    def test_a_message_without_an_event_does_not_decode(self, dest: Destination) -> None:
        from cloudqueue.cloudevents import from_received

        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b'{"type": "x"}', attributes={"ce-type": "x"})
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 1, timeout=30)
        assert len(got) == 1
        with pytest.raises(cloudqueue.errors.DecodeError, match=r"not a CloudEvent.*specversion"):
            from_received(got[0])

    def test_cloudevent_through_the_codec_api(self, dest: Destination) -> None:
        from cloudevents.core.v1.event import CloudEvent as EventType

        event = sample_event({"order": 8}, datacontenttype="application/json")
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(event)  # the codec is chosen by the value's type, the mode by the scheme
        with cloudqueue.open_consumer(dest.consumer_url) as consumer:
            got = collect(consumer, 1, timeout=30)
        assert len(got) == 1
        assert_same_event(got[0].decode(EventType), event)
