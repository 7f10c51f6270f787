"""Property test: arbitrary bodies and attribute maps round-trip exactly."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cloudqueue

from ._base import SuiteBase, collect
from ._harness import Destination

__all__ = ["Properties"]

_NAME_FIRST = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_REST = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", max_size=20
)
_VALUES = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\ufffe\uffff"),
    max_size=60,
)


class Properties(SuiteBase):
    @pytest.fixture
    def channel(
        self, dest: Destination
    ) -> Iterator[tuple[cloudqueue.Producer, cloudqueue.Consumer]]:
        """One producer and consumer for every example: opening them can cost
        a second on cloud SDKs, and each example acks what it received."""
        with cloudqueue.open_producer(dest.producer_url) as producer, \
                cloudqueue.open_consumer(dest.consumer_url) as consumer:
            yield producer, consumer

    # The same test body runs once per provider subclass (differing executors);
    # without the example database the examples cannot leak between them.
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        body=st.binary(max_size=2048),
        names=st.lists(st.builds(str.__add__, _NAME_FIRST, _NAME_REST), max_size=5, unique=True),
        values=st.lists(_VALUES, min_size=5, max_size=5),
    )
    def test_arbitrary_bodies_and_attributes_round_trip(
        self,
        channel: tuple[cloudqueue.Producer, cloudqueue.Consumer],
        body: bytes,
        names: list[str],
        values: list[str],
    ) -> None:
        producer, consumer = channel
        limits = producer.capabilities.limits
        pattern = re.compile(limits.attribute_name_pattern or ".*")
        attributes = {
            name: value
            for name, value in zip(names, values, strict=False)
            if pattern.fullmatch(name)
            and not any(name.startswith(p) for p in limits.reserved_attribute_prefixes)
        }
        message_id = producer.send(body, attributes=attributes)
        got = collect(consumer, 1, timeout=30)  # earlier examples' messages were acked
        assert len(got) == 1
        assert got[0].id == message_id
        assert got[0].body == body
        assert got[0].attributes == attributes
