"""SQLite's redrive move stamped in SQL (``store._move_stamped_in_sql``) against the
Python stamp it replaces for a queue target (``RedriveStamp.attributes`` per row, then
``publish``): the same rows moved, in the same order, with the same ids, attributes
(names, values and their order), counters and the same rows left behind where the
target's limits refuse one."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudqueue
from cloudqueue import ops
from cloudqueue.driver import W3C_CARRIER, Limits, RedriveStamp
from cloudqueue.filters import where
from cloudqueue.providers._broker import DELIVERY_LIMIT_REASON
from cloudqueue.providers._sqlite import schema, store
from cloudqueue.wire import DEAD_LETTER_REASON, REDRIVE_ORIGINAL_ID, REDRIVE_TIME

TIME = "2026-11-29T16:20:00.123Z"
#: 33 bytes in UTF-8: longer than any id or time the stamp writes.
LONG_REASON = "typed in by an \u00e9ngineer, by hand"
LIMITS = Limits(
    max_message_bytes=4096, max_send_batch=100, max_send_batch_bytes=100_000,
    max_receive_batch=100, max_settle_batch=100, max_attributes=20,
    max_attribute_name_bytes=256, max_attribute_value_bytes=256,
)


def _dead_letters(tmp_path: Path) -> Path:
    """A file whose queue ``orders-dlq`` holds each kind of dead letter: dead-lettered
    by a consumer (non-ASCII reason and attributes, earlier provenance), by the
    delivery limit, and sent there by hand with and without the reason attribute."""
    path = tmp_path / "source.db"
    url = f"sqlite:///{path}?queue=orders"
    cloudqueue.declare(url, lease=30.0, dead_letter_after=1)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"refused", attributes={
            "kind": "r\u00e9fus\u00e9", "\u00fcn\u00efcode": "v\u00e5lue \U0001f600",
            REDRIVE_ORIGINAL_ID: "earlier", REDRIVE_TIME: "2020-01-01T00:00:00.000Z",
        })
        producer.send(b"nacked", attributes={"kind": "nacked"})
    with cloudqueue.open_consumer(url) as consumer:
        received = consumer.receive(max_messages=10, wait=5)
        assert sorted(message.body for message in received) == [b"nacked", b"refused"]
        for message in received:
            if message.body == b"refused":
                message.dead_letter("not \u00e9nough \"stock\"")
            else:
                message.nack()  # its one allowed delivery: the next receive moves it
        assert consumer.receive(max_messages=10, wait=0.5) == []
    with cloudqueue.open_producer(cloudqueue.dead_letter_url(url)) as producer:
        producer.send(b"by hand", attributes={DEAD_LETTER_REASON: LONG_REASON, "n": "1"})
        producer.send(b"bare")
    # An OpenTelemetry SDK that another test in this process configured adds trace
    # context to every send: take it out, so the rows (and the limits measured against
    # them) are the same whichever tests ran before.
    with sqlite3.connect(path) as connection:
        paths = ", ".join(f"'$.\"{name}\"'" for name in sorted(W3C_CARRIER.attribute_names))
        connection.execute(f"UPDATE messages SET attributes = json_remove(attributes, {paths})")
    connection.close()
    return path


def _copy(source: Path, path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    with sqlite3.connect(source) as original:
        original.backup(connection)
    original.close()
    return connection


def _move(
    connection: sqlite3.Connection, stamp: RedriveStamp, *, in_sql: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str | None]:
    monkeypatch.setattr(store, "_json_functions", None if in_sql else False)
    store._random.seed(14)  # the same ids on both paths
    cursor = connection.cursor()
    (dead_id,) = cursor.execute(schema.SUBSCRIPTION_ID, ("orders-dlq", "")).fetchone()
    cursor.execute("BEGIN IMMEDIATE")
    reasons = store.move_dead_letters(cursor, dead_id, "orders", None, 100, stamp)
    cursor.execute("COMMIT")
    return reasons


def _contents(connection: sqlite3.Connection) -> tuple[list[tuple[object, ...]], list[object]]:
    """Every row and counter, attributes parsed with their order kept (the texts
    differ in spacing and escapes: json.dumps against SQLite's minified JSON)."""
    rows = connection.execute(
        "SELECT s.topic, m.id, m.body, m.attributes, m.ordering_key, m.deduplication_id, "
        "m.dead_letter_reason FROM messages AS m JOIN subscriptions AS s "
        "ON s.id = m.subscription ORDER BY m.subscription, m.seq"
    ).fetchall()
    counters = connection.execute(
        "SELECT topic, name, total_sent, total_received FROM subscriptions ORDER BY id"
    ).fetchall()
    return [
        (topic, message_id, body, None if text is None else list(json.loads(text).items()),
         *rest)
        for topic, message_id, body, text, *rest in rows
    ], counters


@pytest.fixture
def dead_letters(tmp_path: Path) -> Iterator[Path]:
    yield _dead_letters(tmp_path)


def test_the_sql_stamp_writes_what_the_python_stamp_writes(
    dead_letters: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = RedriveStamp(TIME, LIMITS, ordering=False)
    in_python, in_sql = _copy(dead_letters, tmp_path / "a.db"), _copy(dead_letters, tmp_path / "b.db")
    python_reasons = _move(in_python, stamp, in_sql=False, monkeypatch=monkeypatch)
    sql_reasons = _move(in_sql, stamp, in_sql=True, monkeypatch=monkeypatch)
    assert sql_reasons == python_reasons == [
        "not \u00e9nough \"stock\"", DELIVERY_LIMIT_REASON, LONG_REASON, None
    ]
    assert _contents(in_sql) == _contents(in_python)
    moved = [row for row in _contents(in_sql)[0] if row[0] == "orders"]
    assert [row[2] for row in moved] == [b"refused", b"nacked", b"by hand", b"bare"]
    # Spelled out once, so the comparison above cannot pass with both paths wrong.
    with sqlite3.connect(dead_letters) as original:
        dead_ids = [message_id for (message_id,) in original.execute(
            "SELECT id FROM messages ORDER BY seq"
        )][-4:]  # the dead letters are the last rows written
    original.close()
    first: Any = moved[0][3]
    assert first == [
        ("kind", "r\u00e9fus\u00e9"), ("\u00fcn\u00efcode", "v\u00e5lue \U0001f600"),
        (REDRIVE_ORIGINAL_ID, dead_ids[0]), ("redrive_reason", "not \u00e9nough \"stock\""),
        ("redrive_delivery_count", "1"), (REDRIVE_TIME, TIME),
    ]
    assert [str(row[1]).rsplit("-", 1)[1] for row in moved] == ["1", "2", "3", "4"]
    assert moved[3][3] == [(REDRIVE_ORIGINAL_ID, dead_ids[3]), (REDRIVE_TIME, TIME)]


def _first_size(connection: sqlite3.Connection) -> tuple[int, int]:
    """The size and attribute count ``accepts`` counts for the first message moved
    to ``orders``."""
    body, text = connection.execute(
        "SELECT m.body, m.attributes FROM messages AS m JOIN subscriptions AS s "
        "ON s.id = m.subscription WHERE s.topic = 'orders' ORDER BY m.seq LIMIT 1"
    ).fetchone()
    attributes = json.loads(text)
    size = len(body) + sum(len(name.encode()) + len(value.encode()) for name, value in attributes.items())
    return size, len(attributes)


@pytest.mark.parametrize(
    ("change", "moved"),
    [
        ({"max_attributes": 6}, 4),  # the first moved gets 6: 2 kept, 4 stamped
        ({"max_attributes": 5}, 0),
        ({"max_attribute_value_bytes": 33}, 4),  # LONG_REASON, the third one's
        ({"max_attribute_value_bytes": 32}, 2),
        ({"max_message_bytes": 0}, 4),  # exactly the first one's size (see below)
        ({"max_message_bytes": -1}, 0),  # one byte short
    ],
)
def test_a_row_the_target_may_refuse_stops_the_move_on_both_paths(
    dead_letters: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any], moved: int,
) -> None:
    if "max_message_bytes" in change:  # relative to the first one's size, UTF-8 counted
        sized = _copy(dead_letters, tmp_path / "sized.db")
        _move(sized, RedriveStamp(TIME, LIMITS, ordering=False), in_sql=False, monkeypatch=monkeypatch)
        change = {"max_message_bytes": _first_size(sized)[0] + change["max_message_bytes"]}
    stamp = RedriveStamp(TIME, dataclasses.replace(LIMITS, **change), ordering=False)
    in_python, in_sql = _copy(dead_letters, tmp_path / "a.db"), _copy(dead_letters, tmp_path / "b.db")
    python_reasons = _move(in_python, stamp, in_sql=False, monkeypatch=monkeypatch)
    sql_reasons = _move(in_sql, stamp, in_sql=True, monkeypatch=monkeypatch)
    assert len(sql_reasons) == len(python_reasons) == moved
    assert _contents(in_sql) == _contents(in_python)


def _moved_alike(
    source: Path, tmp_path: Path, stamp: RedriveStamp, monkeypatch: pytest.MonkeyPatch
) -> int:
    """Move from copies of ``source`` on both paths; how many moved (the same on both)."""
    in_python, in_sql = _copy(source, tmp_path / "a.db"), _copy(source, tmp_path / "b.db")
    python_reasons = _move(in_python, stamp, in_sql=False, monkeypatch=monkeypatch)
    sql_reasons = _move(in_sql, stamp, in_sql=True, monkeypatch=monkeypatch)
    assert sql_reasons == python_reasons
    assert _contents(in_sql) == _contents(in_python)
    return len(sql_reasons)


#: Attributes whose JSON text is as short as it can be for their number (non-empty
#: names, empty values) when written without spaces, as SQLite's JSON functions do.
TINY = {name: "" for name in "abcdefghij"}


@pytest.mark.parametrize(
    ("attributes", "how"),
    [({}, "sent"), ({"n": "1"}, "sent"), (TINY, "dead-lettered"), (TINY, "minified")],
)
@pytest.mark.parametrize(
    ("change", "moved"),
    [
        ({"max_attributes": 0}, 1),  # relative to the stamped count
        ({"max_attributes": -1}, 0),
        ({"max_message_bytes": 0}, 1),  # relative to the stamped size
        ({"max_message_bytes": -1}, 0),
    ],
)
def test_small_attributes_are_judged_by_their_text_as_exactly_as_member_by_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attributes: dict[str, str],
    how: str, change: dict[str, int], moved: int,
) -> None:
    # Short JSON text settles the checks without reading the members (see
    # schema.MOVABLE_CHECKED): the stamp's own names and bytes must still count, and
    # the members the text can hold must not be undercounted.
    path = tmp_path / "small.db"
    url = f"sqlite:///{path}?queue=orders"
    cloudqueue.declare(url)
    if how == "dead-lettered":
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"small", attributes=attributes)
        with cloudqueue.open_consumer(url) as consumer:
            (message,) = consumer.receive(max_messages=10, wait=5)
            message.dead_letter("x")
    else:
        with cloudqueue.open_producer(cloudqueue.dead_letter_url(url)) as producer:
            producer.send(b"small", attributes=attributes)
    if how == "minified":  # as SQLite's JSON functions write it: 7 characters a member
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE messages SET attributes = json(attributes)")
        connection.close()
    sized = _copy(path, tmp_path / "sized.db")
    _move(sized, RedriveStamp(TIME, LIMITS, ordering=False), in_sql=False, monkeypatch=monkeypatch)
    size, count = _first_size(sized)
    exact = {"max_attributes": count, "max_message_bytes": size}
    ((name, offset),) = change.items()
    limits = dataclasses.replace(LIMITS, **{name: exact[name] + offset})  # type: ignore[arg-type]
    stamp = RedriveStamp(TIME, limits, ordering=False)
    assert _moved_alike(path, tmp_path, stamp, monkeypatch) == moved


def test_a_keyed_dead_letter_stays_for_a_target_without_ordering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ordered source dead-letters keyed messages into its (unordered) dead-letter queue.
    url = f"sqlite:///{tmp_path}/keyed.db?queue=orders"
    cloudqueue.declare(url, ordered=True)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"plain")
        producer.send(b"keyed", ordering_key="customer-7")
        producer.send(b"after")
    with cloudqueue.open_consumer(url) as consumer:
        received = consumer.receive(max_messages=10, wait=5)
        assert [message.body for message in received] == [b"plain", b"keyed", b"after"]
        for message in received:
            message.dead_letter("bad")
    connection = sqlite3.connect(tmp_path / "keyed.db", isolation_level=None)
    unordered = _move(connection, RedriveStamp(TIME, LIMITS, ordering=False), in_sql=True,
                      monkeypatch=monkeypatch)
    assert unordered == ["bad"]
    ordered = _move(connection, RedriveStamp(TIME, LIMITS, ordering=True), in_sql=True,
                    monkeypatch=monkeypatch)
    assert ordered == ["bad", "bad"]
    keys = connection.execute(
        "SELECT m.body, m.ordering_key FROM messages AS m JOIN subscriptions AS s "
        "ON s.id = m.subscription WHERE s.topic = 'orders' ORDER BY m.seq"
    ).fetchall()
    assert keys == [(b"plain", None), (b"keyed", "customer-7"), (b"after", None)]


def test_redrive_puts_back_what_it_moved_in_sql_with_the_stamp_and_report(
    dead_letters: Path,
) -> None:
    url = f"sqlite:///{dead_letters}?queue=orders"
    report = ops.redrive(cloudqueue.dead_letter_url(url))
    assert report.moved == 4 and not report.failures
    assert report.reasons == {
        "not \u00e9nough \"stock\"": 1, DELIVERY_LIMIT_REASON: 1, LONG_REASON: 1, "": 1,
    }
    with cloudqueue.open_consumer(url) as consumer:
        received = consumer.receive(max_messages=10, wait=5)
        for message in received:
            message.ack()
    assert [message.body for message in received] == [b"refused", b"nacked", b"by hand", b"bare"]
    by_hand = received[2].attributes
    assert by_hand == {
        "n": "1", REDRIVE_ORIGINAL_ID: by_hand[REDRIVE_ORIGINAL_ID],
        "redrive_reason": LONG_REASON, REDRIVE_TIME: by_hand[REDRIVE_TIME],
    }
    stats = ops.stats(url)
    assert (stats.total_sent, stats.dead_letters) == (6, 0)


@pytest.mark.parametrize(
    ("plain", "routed"),
    [
        (True, [("all", b"red"), ("all", b"blue"), ("red", b"red")]),
        (False, [("red", b"red")]),  # its one subscription's filter still decides
    ],
)
def test_a_topic_with_several_or_filtered_subscriptions_is_routed_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plain: bool,
    routed: list[tuple[str, bytes]],
) -> None:
    # No one subscription takes every row: the move goes through publish (fan-out,
    # filters), not the SQL stamp, with the JSON functions available.
    path = tmp_path / "topic.db"
    events = f"sqlite:///{path}?queue=events"
    if plain:
        cloudqueue.declare(events + "&subscription=all")
    cloudqueue.declare(events + "&subscription=red", filter=where("colour").equals("red"))
    with cloudqueue.open_producer(f"sqlite:///{path}?queue=orders-dlq") as producer:
        producer.send(b"red", attributes={"colour": "red"})
        producer.send(b"blue", attributes={"colour": "blue"})
    connection = sqlite3.connect(path, isolation_level=None)
    monkeypatch.setattr(store, "_json_functions", None)
    cursor = connection.cursor()
    (dead_id,) = cursor.execute(schema.SUBSCRIPTION_ID, ("orders-dlq", "")).fetchone()
    cursor.execute("BEGIN IMMEDIATE")
    stamp = RedriveStamp(TIME, LIMITS, ordering=False)
    assert store.move_dead_letters(cursor, dead_id, "events", None, 10, stamp) == [None, None]
    cursor.execute("COMMIT")
    assert routed == connection.execute(
        "SELECT s.name, m.body FROM messages AS m JOIN subscriptions AS s "
        "ON s.id = m.subscription WHERE s.topic = 'events' ORDER BY s.name, m.seq"
    ).fetchall()
