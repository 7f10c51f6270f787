"""Operations on the destinations of one file, each one transaction.

Functions here take a cursor inside a transaction opened by
:meth:`Database.write` (or a plain one for reads) and do the SQL; the drivers
decide when to call them. Semantics follow the memory broker (``_broker``),
which the contract suite compares every provider with.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..._message import Message
from ...driver import Declaration, Delivery, QueueStats, RedriveStamp
from ...errors import InvalidArgument, NotFound, QueueError
from ...filters import Filter
from ...wire import DEAD_LETTER_REASON
from .._broker import DEDUPLICATION_WINDOW, DeadLetterOrigin, dead_letter_name
from . import schema

__all__ = [
    "Lease",
    "SubscriptionSettings",
    "Token",
    "ack",
    "dead_letter",
    "dead_letter_sources",
    "declare",
    "delete",
    "ensure_subscription",
    "ensure_topic",
    "extend",
    "lease",
    "nack",
    "new_lease_id",
    "peek",
    "peek_rows",
    "publish",
    "purge",
    "stats",
    "topic_settings",
]

_UTC = datetime.UTC
#: A settlement token: the row and the lease it was handed out under.
Token = tuple[int, int]
#: Stands in for "no dead-letter limit" in comparisons with ``attempts``.
_NO_LIMIT = 2**62


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    lease: float
    dead_letter_after: int | None
    ordered: bool


@dataclass(frozen=True, slots=True)
class Lease:
    """What one receive took."""

    deliveries: list[Delivery]


def _describe(topic: str, subscription: str) -> str:
    return repr(topic) + (f" subscription {subscription!r}" if subscription else "")


# -- destinations --------------------------------------------------------------------


def ensure_topic(cursor: sqlite3.Cursor, topic: str, *, create_queue: bool) -> None:
    """Create ``topic`` if missing; a topic created for a queue gets its ``""`` subscription."""
    cursor.execute(schema.ADD_TOPIC, (topic,))
    if cursor.rowcount == 1 and create_queue:
        cursor.execute(schema.ADD_SUBSCRIPTION, (topic, ""))


def ensure_subscription(cursor: sqlite3.Cursor, topic: str, subscription: str) -> int:
    ensure_topic(cursor, topic, create_queue=(subscription == ""))
    cursor.execute(schema.ADD_SUBSCRIPTION, (topic, subscription))
    return int(cursor.execute(schema.SUBSCRIPTION_ID, (topic, subscription)).fetchone()[0])


def topic_settings(cursor: sqlite3.Cursor, topic: str) -> tuple[bool, bool] | None:
    """``(ordered, deduplicated)``, or None when the topic does not exist."""
    row = cursor.execute(schema.TOPIC_SETTINGS, (topic,)).fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]))


def subscription_settings(cursor: sqlite3.Cursor, sub_id: int) -> SubscriptionSettings | None:
    row = cursor.execute(schema.SUBSCRIPTION_SETTINGS, (sub_id,)).fetchone()
    return None if row is None else SubscriptionSettings(row[0], row[1], bool(row[2]))


def declare(cursor: sqlite3.Cursor, topic: str, subscription: str, declaration: Declaration) -> None:
    sub_id = ensure_subscription(cursor, topic, subscription)
    cursor.execute(schema.SET_TOPIC, (declaration.ordered, declaration.deduplicated, topic))
    wanted = declaration.filter
    cursor.execute(
        schema.SET_SUBSCRIPTION,
        (
            declaration.lease,
            declaration.dead_letter_after,
            None if wanted is None else wanted.to_json_text(),
            sub_id,
        ),
    )


def _subscription_id(cursor: sqlite3.Cursor, topic: str, subscription: str) -> int | None:
    row = cursor.execute(schema.SUBSCRIPTION_ID, (topic, subscription)).fetchone()
    return None if row is None else int(row[0])


def purge(cursor: sqlite3.Cursor, topic: str, subscription: str) -> None:
    sub_id = _subscription_id(cursor, topic, subscription)
    if sub_id is None:
        raise NotFound(f"SQLite destination {_describe(topic, subscription)} has nothing to purge")
    cursor.execute(schema.PURGE, (sub_id,))


def delete(cursor: sqlite3.Cursor, topic: str, subscription: str | None) -> None:
    if subscription is not None:
        sub_id = _subscription_id(cursor, topic, subscription)
        if sub_id is None:
            raise NotFound(f"SQLite topic {topic!r} has no subscription {subscription!r}")
        cursor.execute(schema.PURGE, (sub_id,))
        cursor.execute(schema.DELETE_SUBSCRIPTION, (sub_id,))
        return
    if topic_settings(cursor, topic) is None:
        raise NotFound(f"SQLite destination {topic!r} does not exist")
    for statement in (
        schema.DELETE_TOPIC_MESSAGES,
        schema.DELETE_TOPIC_SUBSCRIPTIONS,
        schema.DELETE_TOPIC_DEDUPLICATION,
        schema.DELETE_TOPIC,
    ):
        cursor.execute(statement, (topic,))


# -- sending ---------------------------------------------------------------------------


#: Random bits for ids and lease ids: a private generator, seeded from the OS, so an
#: application's ``random.seed()`` cannot make two processes draw the same ones, and
#: reseeded in forked children, so parent and child never share a sequence. One
#: ``os.urandom`` call per send and receive was a system call that let other threads
#: take the GIL (a tenth of a one-at-a-time round trip in cProfile).
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def new_message_ids() -> Iterator[str]:
    """Ids unique across the processes sharing a file: 80 random bits per batch
    (no shared counter) and a number within the batch."""
    prefix = f"{_random.getrandbits(80):020x}"
    return (f"{prefix}-{number}" for number in itertools.count(1))


def new_lease_id() -> int:
    """63 random bits per receive: tokens of different leases never match."""
    return _random.getrandbits(63)


def publish(
    cursor: sqlite3.Cursor, topic: str, messages: Sequence[Message], only: str | None = None
) -> list[str | QueueError]:
    """Insert one row per message and subscription; repeats of a deduplication id
    within the window get the first message's id and no row. With ``only``, the rows
    go to that one subscription, whatever its filter (a redrive putting back what was
    routed there before)."""
    targets = cursor.execute(schema.PUBLISH_TARGETS, (topic,)).fetchall()
    if not targets:
        raise NotFound(f"SQLite destination {topic!r} was deleted")
    deduplicate = bool(targets[0][0])
    # Routing is decided here, at publish time, from the filters stored now.
    if only is None:
        subscriptions = [
            (sub_id, None if text is None else _stored_filter(text))
            for _, sub_id, text, _ in targets
            if sub_id is not None
        ]
    else:
        subscriptions = [(sub_id, None) for _, sub_id, _, name in targets if name == only]
        if not subscriptions:
            raise NotFound(f"SQLite topic {topic!r} has no subscription {only!r}")
    now = time.time()
    if not deduplicate and len(subscriptions) == 1 and subscriptions[0][1] is None:
        return _publish_to_one(cursor, subscriptions[0][0], messages, now)
    if deduplicate:
        cursor.execute(schema.FORGET_DEDUPLICATION_IDS, (topic, now))
    ids: list[str | QueueError] = []
    fresh_ids = new_message_ids()
    rows: list[tuple[object, ...]] = []
    sent: Counter[int] = Counter()  # rows per subscription, for its total_sent
    for message in messages:
        dedup_id = message.deduplication_id if deduplicate else None
        if dedup_id is not None:
            seen = cursor.execute(schema.SEEN_DEDUPLICATION_ID, (topic, dedup_id, now)).fetchone()
            if seen is not None:
                ids.append(seen[0])
                continue
        message_id = next(fresh_ids)
        if dedup_id is not None:
            cursor.execute(
                schema.REMEMBER_DEDUPLICATION_ID,
                (topic, dedup_id, message_id, now + DEDUPLICATION_WINDOW),
            )
        ids.append(message_id)
        attributes = json.dumps(message.attributes) if message.attributes else None
        visible_at = now + message.delay if message.delay else now
        for sub_id, wanted in subscriptions:
            if wanted is not None and not wanted.matches(message.attributes):
                continue
            sent[sub_id] += 1
            rows.append(
                (sub_id, message_id, message.body, attributes, message.ordering_key, now, visible_at,
                 message.deduplication_id)
            )
    _insert(cursor, rows)
    cursor.executemany(schema.COUNT_SENT, [(count, sub_id) for sub_id, count in sent.items()])
    return ids


def _publish_to_one(
    cursor: sqlite3.Cursor, sub_id: int, messages: Sequence[Message], now: float
) -> list[str | QueueError]:
    """:func:`publish` for the common case, a queue (one subscription, no filter)
    without deduplication: a row per message, made in one pass (a 100-message send
    transaction, SQL included, went from 13.7 to 12.8 us per message, medians of 8
    interleaved rounds)."""
    prefix = f"{_random.getrandbits(80):020x}"  # as new_message_ids
    ids: list[str | QueueError] = [f"{prefix}-{number}" for number in range(1, len(messages) + 1)]
    rows: list[tuple[object, ...]] = [
        (sub_id, message_id, message.body,
         json.dumps(message.attributes) if message.attributes else None,
         message.ordering_key, now, now + message.delay if message.delay else now,
         message.deduplication_id)
        for message_id, message in zip(ids, messages, strict=True)
    ]
    _insert(cursor, rows)
    cursor.execute(schema.COUNT_SENT, (len(rows), sub_id))
    return ids


def _insert(cursor: sqlite3.Cursor, rows: list[tuple[object, ...]]) -> None:
    """Insert ``rows`` with as few multi-row statements as ``INSERT_CHUNKS`` allow."""
    start = 0
    for size in schema.INSERT_CHUNKS:
        statement = schema.INSERT_MESSAGES[size]
        while len(rows) - start >= size:
            cursor.execute(statement, [value for row in rows[start:start + size] for value in row])
            start += size


@functools.lru_cache(maxsize=256)
def _stored_filter(text: str) -> Filter:
    """A subscription's filter from its stored JSON (parsed once per distinct text)."""
    return Filter.from_json(text)


# -- receiving ---------------------------------------------------------------------------


def peek(cursor: sqlite3.Cursor, sub_id: int) -> tuple[bool, float | None]:
    """Whether the subscription exists, and when its earliest row is visible (None: empty)."""
    exists, earliest = cursor.execute(schema.PEEK, {"sub": sub_id}).fetchone()
    return exists is not None, earliest


def lease(
    cursor: sqlite3.Cursor, sub_id: int, describe: str, max_messages: int, lease_id: int
) -> Lease:
    """Lease up to ``max_messages`` visible rows under ``lease_id`` (in a write transaction)."""
    settings = subscription_settings(cursor, sub_id)
    if settings is None:
        raise NotFound(f"SQLite destination {describe} was deleted")
    now = time.time()
    statement = schema.CHOOSE_ORDERED if settings.ordered else schema.CHOOSE
    rows = cursor.execute(statement, {"sub": sub_id, "now": now, "limit": max_messages}).fetchall()
    if len(rows) == 1:
        cursor.execute(schema.TAKE_ONE, (lease_id, now + settings.lease, rows[0][0]))
    elif rows:
        seqs = json.dumps([row[0] for row in rows])
        cursor.execute(schema.TAKE, (lease_id, now + settings.lease, seqs))
    limit = settings.dead_letter_after
    if limit is not None and rows:
        # Taken once more than allowed: its last lease ran out unsettled. Moved now,
        # on the receive that would exceed the limit (see schema), not delivered.
        exhausted = [((row[0], lease_id), None) for row in rows if row[6] > limit]
        if exhausted:
            dead_letter(cursor, sub_id, exhausted, uncounted=1)
            rows = [row for row in rows if row[6] <= limit]
    if not rows:
        return Lease([])
    cursor.execute(schema.COUNT_RECEIVED, (len(rows), sub_id))
    rows.sort()  # chosen by visibility; seq is the order of sending
    deadline = time.monotonic() + settings.lease
    return Lease(_deliveries(rows, lease_id, deadline))


#: A row as CHOOSE and PEEK_ROWS read it.
_Row = tuple[
    int, str, bytes, str | None, str | None, float, int, str | None, str | None, int | None,
    str | None, str | None,
]


def _deliveries(
    rows: Sequence[_Row], lease_id: int | None, deadline: float | None
) -> list[Delivery]:
    # Rows sent in one batch share their enqueue time: convert each time once.
    enqueued: dict[float, datetime.datetime] = {}
    return [
        Delivery(
            None if lease_id is None else (seq, lease_id),  # the token; peeks have none
            message_id,
            body,
            json.loads(attributes) if attributes else {},
            attempts,
            key,
            enqueued.get(enqueued_at) or enqueued.setdefault(
                enqueued_at, datetime.datetime.fromtimestamp(enqueued_at, _UTC)
            ),
            deadline,
            None if source_topic is None else DeadLetterOrigin(
                source_topic, source_subscription or "", deliveries or 0, reason or ""
            ),
            deduplication_id=deduplication_id,
        )
        for (
            seq, message_id, body, attributes, key, enqueued_at, attempts,
            source_topic, source_subscription, deliveries, reason, deduplication_id,
        ) in rows
    ]


def move_dead_letters(
    cursor: sqlite3.Cursor, sub_id: int, target: str, only: str | None, max_messages: int,
    stamp: RedriveStamp,
) -> list[str | None]:
    """Move the first visible rows of the dead-letter queue ``sub_id`` to ``target`` as
    a redrive would send them, in this one transaction; stop at an ordered queue or at
    a row the target may refuse (the portable redrive deals with those). Returns the
    reason of each moved. Stamped in SQL where every row goes to one subscription
    (:func:`_move_stamped_in_sql`), else here row by row and through :func:`publish`
    (deduplication, filters, fan-out)."""
    settings = subscription_settings(cursor, sub_id)
    if settings is None or settings.ordered:
        return []
    target_id = _sole_target(cursor, target, only)
    if target_id is not None and _has_json_functions(cursor):
        return _move_stamped_in_sql(cursor, sub_id, target_id, max_messages, stamp)
    rows = cursor.execute(
        schema.MOVABLE, {"sub": sub_id, "now": time.time(), "limit": max_messages}
    ).fetchall()
    messages: list[Message] = []
    reasons: list[str | None] = []
    seqs: list[int] = []
    for seq, message_id, body, attributes, key, source_topic, deliveries, reason in rows:
        stored = json.loads(attributes) if attributes else {}
        if source_topic is None:  # sent here by hand: the reason is the portable attribute's
            reason, deliveries = stored.get(DEAD_LETTER_REASON), None
        else:
            reason, deliveries = reason or "", deliveries or 0
        stamped = stamp.attributes(stored, message_id, reason, deliveries)
        if not stamp.accepts(body, stamped, key):
            break
        messages.append(Message(body, attributes=stamped, ordering_key=key))
        reasons.append(reason)
        seqs.append(seq)
    if not messages:
        return []
    publish(cursor, target, messages, only)
    cursor.execute(schema.REMOVE_MOVED, (json.dumps(seqs),))
    cursor.execute(schema.COUNT_RECEIVED, (len(seqs), sub_id))
    return reasons


def _sole_target(cursor: sqlite3.Cursor, topic: str, only: str | None) -> int | None:
    """The one subscription :func:`publish` would route every moved row to, when no
    row needs looking at (no deduplication, no filter to match): ``only``, or a topic's
    single subscription without a filter (a queue). None for anything else, which
    the Python path moves through :func:`publish` (and which reports a missing target)."""
    targets = cursor.execute(schema.PUBLISH_TARGETS, (topic,)).fetchall()
    if not targets or targets[0][0]:
        return None
    if only is not None:
        named = [sub_id for _, sub_id, _, name in targets if name == only]
        return named[0] if named else None
    if len(targets) == 1 and targets[0][1] is not None and targets[0][2] is None:
        return int(targets[0][1])
    return None


#: Whether this process's SQLite has the JSON functions (built in since 3.38,
#: before that a compile-time option most builds enable); asked once.
_json_functions: bool | None = None


def _has_json_functions(cursor: sqlite3.Cursor) -> bool:
    global _json_functions
    if _json_functions is None:
        try:
            cursor.execute("SELECT json_remove(json_set('{}', '$.a', 'b'), '$.a')").fetchone()
            _json_functions = True
        except sqlite3.OperationalError:  # "no such function": this build has none
            _json_functions = False
    return _json_functions


def _move_stamped_in_sql(
    cursor: sqlite3.Cursor, sub_id: int, target_id: int, max_messages: int,
    stamp: RedriveStamp,
) -> list[str | None]:
    """:func:`move_dead_letters` to one subscription, the stamp written by SQLite's
    JSON functions: no row is parsed, built or encoded in Python, which cost more
    than half of what the batched send of the same messages costs. CPU per message
    moving 10,000 (bench_ops' workload, min of 5): 35.8 us with the Python stamp,
    17.5 us here, batched send 20.6 us. Same rows, order, ids and attributes as the
    Python path; test_sqlite_redrive_move.py compares the two."""
    now = time.time()
    limits = stamp.limits
    rows = cursor.execute(
        schema.MOVABLE_CHECKED,
        {"sub": sub_id, "now": now, "limit": max_messages, "time": stamp.time,
         "ordering": stamp.ordering, "max_value_bytes": limits.max_attribute_value_bytes,
         "max_attributes": limits.max_attributes, "max_message_bytes": limits.max_message_bytes},
    ).fetchall()
    for position, (_, _, accepted) in enumerate(rows):
        if not accepted:  # stop there: the portable redrive reports why it is refused
            rows = rows[:position]
            break
    if not rows:
        return []
    seqs = json.dumps([seq for seq, _, _ in rows])
    prefix = f"{_random.getrandbits(80):020x}"  # as new_message_ids
    cursor.execute(
        schema.INSERT_STAMPED,
        {"target": target_id, "prefix": prefix, "seqs": seqs, "time": stamp.time, "now": now},
    )
    cursor.execute(schema.REMOVE_MOVED, (seqs,))
    cursor.execute(schema.COUNT_RECEIVED, (len(rows), sub_id))
    cursor.execute(schema.COUNT_SENT, (len(rows), target_id))
    return [reason for _, reason, _ in rows]


# -- settling ------------------------------------------------------------------------------


def ack(cursor: sqlite3.Cursor, tokens: Sequence[Token]) -> None:
    """Delete the rows; a token whose lease ended and was taken again matches nothing."""
    if len(tokens) == 1:
        cursor.execute(schema.ACK, tokens[0])
        return
    by_lease: dict[int, list[int]] = {}
    for seq, lease_id in tokens:
        by_lease.setdefault(lease_id, []).append(seq)
    for lease_id, seqs in by_lease.items():
        cursor.execute(schema.ACK_LEASE, (lease_id, json.dumps(seqs)))


def nack(cursor: sqlite3.Cursor, sub_id: int, entries: Sequence[tuple[Token, float]]) -> None:
    """Make rows visible again after their delay, or dead-letter them past the limit."""
    settings = subscription_settings(cursor, sub_id)
    if settings is None:
        return  # deleted: nothing left to give back
    limit = settings.dead_letter_after or _NO_LIMIT
    now = time.time()
    exhausted: list[tuple[Token, str | None]] = []
    for (seq, lease_id), delay in entries:
        cursor.execute(schema.NACK, (now + delay, seq, lease_id, limit))
        if cursor.rowcount == 0 and settings.dead_letter_after is not None:
            exhausted.append(((seq, lease_id), None))
    if exhausted:  # only rows still leased to us are moved (the copy matches the lease)
        dead_letter(cursor, sub_id, exhausted)


def release(cursor: sqlite3.Cursor, tokens: Sequence[Token]) -> None:
    """Make rows visible again at once without counting the delivery (as memory does)."""
    now = time.time()
    cursor.executemany(schema.RELEASE, [(now, seq, lease_id) for seq, lease_id in tokens])


def extend(cursor: sqlite3.Cursor, entries: Sequence[tuple[Token, float]]) -> list[bool]:
    now = time.time()
    extended = []
    for (seq, lease_id), seconds in entries:
        cursor.execute(schema.EXTEND, (now + seconds, seq, lease_id))
        extended.append(cursor.rowcount == 1)
    return extended


def dead_letter(
    cursor: sqlite3.Cursor,
    sub_id: int,
    entries: Sequence[tuple[Token, str | None]],
    *,
    uncounted: int = 0,
) -> None:
    """Move leased rows to the dead-letter topic (``<topic>-dlq`` or
    ``<topic>-<subscription>-dlq``), with the reason as an attribute and their
    origin in the ``dead_letter_*`` columns. ``uncounted``: attempts the rows'
    ``attempts`` counts that delivered nothing (the lease that found them exhausted)."""
    row = cursor.execute(schema.SUBSCRIPTION_NAMES, (sub_id,)).fetchone()
    if row is None:
        return
    source_topic, source_subscription = row
    target = dead_letter_name(source_topic, source_subscription)
    ensure_topic(cursor, target, create_queue=True)
    now = time.time()
    moved = 0
    for (seq, lease_id), reason in entries:
        cursor.execute(
            schema.COPY_TO_DEAD_LETTERS,
            {"reason": reason, "now": now, "target": target, "seq": seq, "lease": lease_id,
             "source_topic": source_topic, "source_subscription": source_subscription,
             "uncounted": uncounted},
        )
        cursor.execute(schema.ACK, (seq, lease_id))
        moved += cursor.rowcount  # 1 when the row was still leased to us, and so copied
    if moved:
        cursor.execute(schema.COUNT_SENT_TO_TOPIC, (moved, target))


# -- operations ------------------------------------------------------------------------------


def _for_operations(cursor: sqlite3.Cursor, topic: str, subscription: str | None) -> int | None:
    """The subscription ``stats`` and ``peek`` read; None for one that does not exist
    yet (SQLite destinations spring into existence on first use: empty, not missing)."""
    sub_id = _subscription_id(cursor, topic, subscription or "")
    if sub_id is None and subscription is None:
        names = [name for (name,) in cursor.execute(schema.TOPIC_SUBSCRIPTIONS, (topic,))]
        if names or topic_settings(cursor, topic) is not None:
            named = ", ".join(repr(name) for name in names) or "none yet"
            raise InvalidArgument(
                f"SQLite destination {topic!r} is a topic (subscriptions: {named}): its "
                "messages are held by each subscription; name one with &subscription=<name>"
            )
    return sub_id


def _settle_exhausted(cursor: sqlite3.Cursor, sub_id: int, now: float) -> None:
    """Dead-letter the rows the next receive would (leases that ran out on the last
    allowed delivery), so that counts and peeks show where they really are."""
    settings = subscription_settings(cursor, sub_id)
    if settings is None or settings.dead_letter_after is None:
        return
    rows = cursor.execute(schema.EXHAUSTED, (sub_id, now, settings.dead_letter_after)).fetchall()
    if rows:
        dead_letter(cursor, sub_id, [((seq, lease_id), None) for seq, lease_id in rows])


def stats(cursor: sqlite3.Cursor, topic: str, subscription: str | None) -> QueueStats:
    """Exact counts of one queue or subscription (in a write transaction: one snapshot,
    and the rows a receive would dead-letter are moved first)."""
    sub_id = _for_operations(cursor, topic, subscription)
    if sub_id is None:
        return QueueStats(0, 0, 0, 0, None, exact=True, total_sent=0, total_received=0)
    now = time.time()
    _settle_exhausted(cursor, sub_id, now)
    (available,) = cursor.execute(schema.AVAILABLE, (sub_id, now)).fetchone()
    in_flight, delayed = cursor.execute(schema.NOT_VISIBLE, (sub_id, now)).fetchone()
    first = cursor.execute(schema.OLDEST, (sub_id,)).fetchone()
    oldest = None if first is None else first[0]
    dead_id = _subscription_id(cursor, dead_letter_name(topic, subscription or ""), "")
    dead_letters = 0 if dead_id is None else cursor.execute(schema.HELD, (dead_id,)).fetchone()[0]
    total_sent, total_received = cursor.execute(schema.TOTALS, (sub_id,)).fetchone()
    return QueueStats(
        available, in_flight, delayed, dead_letters,
        None if oldest is None else max(0.0, now - oldest),
        exact=True, total_sent=total_sent, total_received=total_received,
    )


def peek_rows(
    cursor: sqlite3.Cursor, topic: str, subscription: str | None, max_messages: int
) -> list[Delivery]:
    """The ``max_messages`` oldest rows (in order of sending), as deliveries without a
    token: nothing is leased or counted (in a write transaction, see :func:`stats`)."""
    sub_id = _for_operations(cursor, topic, subscription)
    if sub_id is None:
        return []
    _settle_exhausted(cursor, sub_id, time.time())
    rows = cursor.execute(schema.PEEK_ROWS, (sub_id, max_messages)).fetchall()
    return _deliveries(rows, None, None)


def dead_letter_sources(cursor: sqlite3.Cursor, name: str) -> list[tuple[str, str]]:
    """The ``(topic, subscription)`` pairs whose dead letters go to queue ``name``."""
    return sorted(
        (topic, subscription)
        for topic, subscription in cursor.execute(schema.ALL_SUBSCRIPTIONS)
        if dead_letter_name(topic, subscription) == name
    )
