"""Subscription filters: the language itself, and filtering through the server."""

from __future__ import annotations

import pytest
from conftest import SubscriptionFactory, pull_now, pull_until
from google.api_core import exceptions
from google.cloud import pubsub_v1

from cloudqueue_pubsub.testing._errors import InvalidArgument
from cloudqueue_pubsub.testing._filters import compile_filter

RED = {"colour": "red", "size": "large"}
BLUE = {"colour": "blue"}
NONE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("attributes:colour", [RED, BLUE]),
        ("NOT attributes:colour", [NONE]),
        ("-attributes:size", [BLUE, NONE]),
        ('attributes.colour = "red"', [RED]),
        ("attributes.colour = 'blue'", [BLUE]),
        ('attributes.colour != "red"', [BLUE, NONE]),
        ('hasPrefix(attributes.colour, "bl")', [BLUE]),
        ('hasPrefix(attributes.colour, "")', [RED, BLUE]),
        ('attributes:colour AND NOT attributes.colour = "red"', [BLUE]),
        ('attributes.colour = "red" OR attributes.colour = "blue"', [RED, BLUE]),
        ('attributes:size OR (attributes:colour AND attributes.colour != "red")', [RED, BLUE]),
        ('NOT (attributes.colour = "red" OR attributes.colour = "blue")', [NONE]),
        ('attributes."colour" = "red"', [RED]),
        ('  attributes.size="large"  ', [RED]),
    ],
)
def test_filter_language(expression: str, matches: list[dict[str, str]]) -> None:
    predicate = compile_filter(expression)
    assert predicate is not None
    assert [attributes for attributes in (RED, BLUE, NONE) if predicate(attributes)] == matches


def test_empty_filter_matches_everything() -> None:
    assert compile_filter("") is None
    assert compile_filter("   ") is None


@pytest.mark.parametrize(
    "expression",
    [
        "attributes",
        "attributes.colour",
        "attributes.colour = red",
        'attributes.colour == "red"',
        "attributes:a AND attributes:b OR attributes:c",  # AND/OR need parentheses
        "(attributes:a",
        "attributes:a)",
        'hasPrefix(attributes.colour "r")',
        'colour = "red"',
        "attributes:a AND",
        'attributes.colour = "unterminated',
        "attributes:a # comment",
        "a" * 300,
    ],
)
def test_invalid_filters(expression: str) -> None:
    with pytest.raises(InvalidArgument):
        compile_filter(expression)


def test_server_filters_messages_per_subscription(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    red_only = make_subscription(filter='attributes.colour = "red"')
    everything = make_subscription()
    futures = [
        publisher.publish(topic, b"1", colour="red"),
        publisher.publish(topic, b"2", colour="blue"),
        publisher.publish(topic, b"3"),
        publisher.publish(topic, b"4", colour="red", size="s"),
    ]
    for future in futures:
        future.result(timeout=10)
    assert [m.message.data for m in pull_until(subscriber, red_only, 2)] == [b"1", b"4"]
    assert pull_now(subscriber, red_only) == []
    assert len(pull_until(subscriber, everything, 4)) == 4
    stored = subscriber.get_subscription(subscription=red_only)
    assert stored.filter == 'attributes.colour = "red"'


def test_invalid_filter_is_refused_by_the_server(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        make_subscription(filter="attributes.colour = ")
