"""Received messages carry the deduplication id they were sent with (memory and SQLite):
on receipt, in peeks, on dead letters, and in SQLite files upgraded from version 3."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

import pytest
from sqlite_versions import VERSION_3_TABLES

import cloudqueue
from cloudqueue import Message, ops

_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = f"dedup{next(_names)}-{time.monotonic_ns()}"
    if request.param == "memory":
        return f"memory://{name}"
    return f"sqlite:///{tmp_path}/dedup.db?queue={name}"


def receive_all(url: str, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(url) as consumer:
        while len(got) < count and (batch := consumer.receive(count, 5.0)):
            for message in batch:
                message.ack()
            got.extend(batch)
    return got


def test_a_received_message_carries_the_deduplication_id_it_was_sent_with(url: str) -> None:
    cloudqueue.declare(url, deduplicated=True)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([Message("with", deduplication_id="order-7"), Message("without")])
    (peeked_with, peeked_without) = ops.peek(url)
    assert (peeked_with.deduplication_id, peeked_without.deduplication_id) == ("order-7", None)
    received = {m.text(): m.deduplication_id for m in receive_all(url, 2)}
    assert received == {"with": "order-7", "without": None}


def test_a_dead_letter_keeps_its_deduplication_id(url: str) -> None:
    cloudqueue.declare(url, deduplicated=True)
    with cloudqueue.open_producer(url) as producer:
        producer.send("poison", deduplication_id="order-8")
    with cloudqueue.open_consumer(url) as consumer:
        (message,) = consumer.receive(1, 5.0)
        message.dead_letter("unparseable")
    dead_url = cloudqueue.dead_letter_url(url)
    (peeked,) = ops.dead_letters(url)
    assert peeked.deduplication_id == "order-8"
    (dead,) = receive_all(dead_url, 1)
    assert (dead.text(), dead.deduplication_id) == ("poison", "order-8")


_VERSION_3_FILE = VERSION_3_TABLES + """
INSERT INTO topics (name, deduplicated) VALUES ('orders', 1);
INSERT INTO subscriptions (topic, name) VALUES ('orders', '');
INSERT INTO messages (subscription, id, body, enqueued_at, visible_at)
VALUES (1, 'old-1', X'6F6C64', 0, 0);
PRAGMA user_version = 3;
"""


def test_a_version_3_sqlite_file_is_upgraded_and_keeps_deduplication_ids_from_then_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as old:
        old.executescript(_VERSION_3_FILE)
    old.close()
    url = f"sqlite:///{path}?queue=orders"
    with cloudqueue.open_producer(url) as producer:
        producer.send("new", deduplication_id="order-9")
        producer.send("repeat", deduplication_id="order-9")  # still deduplicated: dropped
    received = {m.text(): m.deduplication_id for m in receive_all(url, 2)}
    # The row written before the upgrade never had one: None, not a made-up id.
    assert received == {"old": None, "new": "order-9"}
    with sqlite3.connect(path) as upgraded:
        columns = {row[1] for row in upgraded.execute("PRAGMA table_info(messages)")}
    upgraded.close()
    assert "deduplication_id" in columns
