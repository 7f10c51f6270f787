"""A batch of acks goes out as one ``basic.ack`` with ``multiple`` where that acks nothing
else (:mod:`cloudqueue_rabbitmq._tags`): the rule on its own, then through the portable API
on a real broker, where a message held, given back or never handed out in the middle of
acked ones must not be acked with them."""

from __future__ import annotations

from collections.abc import Iterator

import cloudqueue
import pytest
from cloudqueue.testing.contract import collect, quiet_for

from cloudqueue_rabbitmq._tags import OpenTags


def _tags(*delivered: int) -> OpenTags:
    tags = OpenTags()
    for tag in delivered:
        tags.delivered(tag)
    return tags


def test_a_batch_holding_every_open_tag_is_covered_whole() -> None:
    assert _tags(1, 2, 3, 4).cover([4, 2, 1, 3]) == 4


def test_the_cover_stops_below_a_tag_still_held() -> None:
    assert _tags(1, 2, 3, 4, 5).cover([1, 2, 4, 5]) == 2


def test_nothing_is_covered_below_the_lowest_held_tag() -> None:
    assert _tags(1, 2, 3).cover([2, 3]) == 0


def test_settled_tags_do_not_hold_the_cover_back() -> None:
    tags = _tags(1, 2, 3, 4)
    tags.settled([2])  # given back (nack) before this batch
    assert tags.cover([1, 3, 4]) == 4


def test_a_tag_not_seen_yet_stops_every_cover() -> None:
    # 3 was delivered but not seen: below 4, it would be acked by a multiple ack of 4.
    assert _tags(1, 2, 4).cover([1, 2, 4]) == 0


def test_a_tag_already_settled_is_never_named() -> None:
    tags = _tags(1, 2)
    tags.settled([2])
    assert tags.cover([1, 2]) == 1


def test_a_new_channel_counts_from_one_again() -> None:
    tags = _tags(1, 2, 3)
    tags.reset()
    tags.delivered(1)
    assert tags.cover([1]) == 1


@pytest.fixture
def queue_url(rabbitmq_url: str, queue_name: str) -> Iterator[str]:
    url = f"{rabbitmq_url}?queue={queue_name}"
    cloudqueue.declare(url)
    try:
        yield url
    finally:
        cloudqueue.delete(url)


def _send(url: str, count: int) -> list[bytes]:
    bodies = [f"m{index}".encode() for index in range(count)]
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(body) for body in bodies])
    return bodies


def test_messages_held_between_acked_ones_come_back(queue_url: str) -> None:
    bodies = _send(queue_url, 10)
    held = {bodies[2], bodies[6]}
    with cloudqueue.open_consumer(queue_url) as consumer:
        got = collect(consumer, 10, 30.0, ack=False)
        assert sorted(m.body for m in got) == sorted(bodies)
        for message in got:
            if message.body not in held:
                message.ack()
        # Closing sends the acks; the two held messages go back unsettled.
    with cloudqueue.open_consumer(queue_url) as consumer:
        again = collect(consumer, 2, 30.0)
        assert {m.body for m in again} == held
        assert all(m.delivery_attempt == 2 for m in again)
        assert quiet_for(consumer, 1.0) == []


def test_a_message_given_back_among_acked_ones_is_delivered_again(queue_url: str) -> None:
    bodies = _send(queue_url, 6)
    with cloudqueue.open_consumer(queue_url) as consumer:
        got = collect(consumer, 6, 30.0, ack=False)
        for message in got:
            if message.body == bodies[1]:
                message.nack()
            else:
                message.ack()
        again = collect(consumer, 1, 30.0)
        assert [m.body for m in again] == [bodies[1]]
        assert again[0].delivery_attempt == 2
        assert quiet_for(consumer, 1.0) == []
