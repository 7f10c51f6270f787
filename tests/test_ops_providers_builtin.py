"""The operations hooks of the memory and SQLite providers (``Provider.stats``,
``peek``, ``dead_letter_facts``, ``redrive_source``, ``open_redrive_target``),
called directly; the portable ``cloudqueue.ops`` is tested by the contract suite.

Receives and settlements go through the providers' own drivers where a test
counts exactly: the portable consumer prefetches and batches acks, so what is in
flight at a given moment is its choice, not the provider's.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlite_versions import VERSION_3_TABLES

import cloudqueue
from cloudqueue import InvalidArgument, Message
from cloudqueue._registry import resolve
from cloudqueue.driver import Delivery, Provider, QueueStats, SubscriptionDriver, Url
from cloudqueue.filters import where
from cloudqueue.providers._broker import DELIVERY_LIMIT_REASON
from cloudqueue.providers._sqlite.schema import SCHEMA_VERSION
from cloudqueue.providers.memory import DeadLetterOrigin
from cloudqueue.testing.contract import eventually, unique_name

#: ``(name, subscription) -> URL`` for a fresh destination of one provider.
Spell = Callable[[str, str | None], str]


@pytest.fixture(params=["memory", "sqlite"])
def spell(request: pytest.FixtureRequest, tmp_path: Path) -> Spell:
    base = f"sqlite:///{tmp_path}/ops.db"

    def memory_url(name: str, sub: str | None) -> str:
        return f"memory://{name}" + (f"?subscription={sub}" if sub else "")

    def sqlite_url(name: str, sub: str | None) -> str:
        return f"{base}?queue={name}" + (f"&subscription={sub}" if sub else "")

    return memory_url if request.param == "memory" else sqlite_url


def hooks(url: str) -> tuple[Provider, Url]:
    return resolve(url)


def stats(url: str) -> QueueStats:
    provider, parsed = hooks(url)
    return provider.stats(parsed)


def peek(url: str, max_messages: int = 100) -> list[Delivery]:
    provider, parsed = hooks(url)
    return provider.peek(parsed, max_messages)


def counts(url: str) -> tuple[int | None, ...]:
    s = stats(url)
    return (s.available, s.in_flight, s.delayed, s.dead_letters, s.total_sent, s.total_received)


@pytest.fixture
def subscription_driver() -> Iterator[Callable[[str], SubscriptionDriver]]:
    opened: list[SubscriptionDriver] = []

    def open_driver(url: str) -> SubscriptionDriver:
        provider, parsed = hooks(url)
        driver = provider.open_subscription(parsed)
        opened.append(driver)
        return driver

    yield open_driver
    for driver in opened:
        driver.close()


def test_stats_are_exact_through_sends_receives_settlements_and_dead_letters(
    spell: Spell, subscription_driver: Callable[[str], SubscriptionDriver]
) -> None:
    name = unique_name("stats")
    url = spell(name, None)
    cloudqueue.declare(url, dead_letter_after=2, lease=600)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([Message(name, attributes={"n": name}) for name in "abcd"])
        producer.send(b"e", delay=600)
    # available, in flight, delayed, dead letters, total sent, total received
    assert counts(url) == (4, 0, 1, 0, 5, 0)
    oldest = stats(url).oldest_age
    assert stats(url).exact and oldest is not None and oldest >= 0

    driver = subscription_driver(url)
    a, b, c = driver.receive_batch(3, 5)
    assert [m.body for m in (a, b, c)] == [b"a", b"b", b"c"]
    assert counts(url) == (1, 3, 1, 0, 5, 3)
    driver.ack([a.token])
    assert counts(url) == (1, 2, 1, 0, 5, 3)
    driver.nack([(b.token, 0.0)])  # back at once: its first of two deliveries failed
    driver.nack([(c.token, 600.0)])  # back later: delayed meanwhile
    assert counts(url) == (2, 0, 2, 0, 5, 3)

    b2, d = driver.receive_batch(2, 5)
    assert (b2.body, b2.delivery_attempt, d.body) == (b"b", 2, b"d")
    assert counts(url) == (0, 2, 2, 0, 5, 5)
    driver.nack([(b2.token, 0.0)])  # its last allowed delivery failed: dead-lettered
    driver.dead_letter([(d.token, "unparseable")])
    assert counts(url) == (0, 0, 2, 2, 5, 5)

    dead_url = cloudqueue.dead_letter_url(url)
    assert counts(dead_url) == (2, 0, 0, 0, 2, 0)
    provider, parsed_dead = hooks(dead_url)
    facts = {
        delivery.body: provider.dead_letter_facts(parsed_dead, delivery)
        for delivery in peek(dead_url)
    }
    assert (facts[b"b"].reason, facts[b"b"].delivery_count) == (DELIVERY_LIMIT_REASON, 2)
    assert (facts[b"d"].reason, facts[b"d"].delivery_count) == ("unparseable", 1)
    assert facts[b"d"].attributes == {"n": "d"}  # the dead_letter_reason marker is removed
    assert facts[b"d"].source == repr(name)


def test_a_lease_that_runs_out_on_its_last_delivery_counts_as_a_dead_letter(
    spell: Spell, subscription_driver: Callable[[str], SubscriptionDriver]
) -> None:
    url = spell(unique_name("expiry"), None)
    cloudqueue.declare(url, dead_letter_after=1, lease=1.0)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"held too long")
    (delivery,) = subscription_driver(url).receive_batch(1, 5)  # never settled
    # No receive follows: stats itself moves it, as the next receive would.
    final = eventually(lambda: counts(url) if stats(url).dead_letters else None, timeout=10)
    assert final == (0, 0, 0, 1, 1, 1)
    dead_url = cloudqueue.dead_letter_url(url)
    (dead,) = peek(dead_url)
    provider, parsed = hooks(dead_url)
    facts = provider.dead_letter_facts(parsed, dead)
    assert (dead.id, facts.reason, facts.delivery_count) == (
        delivery.id, DELIVERY_LIMIT_REASON, 1
    )


def test_a_delayed_message_is_counted_available_once_due_without_any_receive(
    spell: Spell,
) -> None:
    url = spell(unique_name("delay"), None)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"soon", delay=0.3)
        producer.send(b"later", delay=600)
    assert eventually(lambda: counts(url) == (1, 0, 1, 0, 2, 0), timeout=10)
    assert [d.body for d in peek(url)] == [b"soon", b"later"]  # delayed ones too, oldest first


def test_peek_reads_oldest_first_and_changes_nothing_a_later_receive_gets(spell: Spell) -> None:
    url = spell(unique_name("peek"), None)
    cloudqueue.declare(url, ordered=True, lease=30)
    sent = [
        Message(f"m{n}", attributes={"n": str(n)}, ordering_key=f"k{n % 2}") for n in range(6)
    ]
    with cloudqueue.open_producer(url) as producer:
        ids = producer.send_batch(sent)

    first = peek(url, 4)
    assert [d.id for d in first] == ids[:4]
    assert all(d.token is None and d.delivery_attempt == 0 for d in first)
    assert [(d.body, d.attributes, d.ordering_key) for d in first] == [
        (m.body, m.attributes, m.ordering_key) for m in sent[:4]
    ]
    assert [d.id for d in peek(url)] == ids  # again, and all of them
    assert counts(url) == (6, 0, 0, 0, 6, 0)

    received: list[tuple[str, int | None]] = []
    with cloudqueue.open_consumer(url) as consumer:
        while len(received) < len(ids):
            for message in consumer.receive(max_messages=10, wait=5):
                received.append((message.id, message.delivery_attempt))
                message.ack()
    assert sorted(received) == sorted((message_id, 1) for message_id in ids)
    for key in (0, 1):  # each ordering key still in order
        assert [i for i, _ in received if i in ids[key::2]] == ids[key::2]


def test_peek_sees_dead_letters_with_their_facts_oldest_first(
    spell: Spell, subscription_driver: Callable[[str], SubscriptionDriver]
) -> None:
    url = spell(unique_name("dlq"), None)
    cloudqueue.declare(url, dead_letter_after=5, ordered=True)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([Message(f"p{n}", ordering_key=f"k{n}") for n in range(3)])
    driver = subscription_driver(url)
    deliveries = driver.receive_batch(3, 5)
    driver.dead_letter([(d.token, f"reason {d.body.decode()}") for d in deliveries])
    dead_url = cloudqueue.dead_letter_url(url)
    peeked = peek(dead_url, 2)
    assert [d.body for d in peeked] == [b"p0", b"p1"]
    provider, parsed = hooks(dead_url)
    assert [provider.dead_letter_facts(parsed, d).reason for d in peeked] == ["reason p0", "reason p1"]
    assert [d.ordering_key for d in peeked] == ["k0", "k1"]
    assert counts(dead_url)[:2] == (3, 0)  # nothing leased by peeking


def test_a_received_dead_letter_offers_its_origin_to_as_(spell: Spell) -> None:
    name = unique_name("origin")
    url = spell(name, "billing")
    cloudqueue.declare(url, dead_letter_after=3)
    with cloudqueue.open_producer(spell(name, None)) as producer:
        producer.send(b"x")
    with cloudqueue.open_consumer(url) as consumer:
        (message,) = consumer.receive(max_messages=1, wait=5)
        message.dead_letter("no handler")
    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url)) as dead:
        (letter,) = dead.receive(max_messages=1, wait=5)
        letter.ack()
    assert letter.as_(DeadLetterOrigin) == DeadLetterOrigin(name, "billing", 1, "no handler")
    assert message.as_(DeadLetterOrigin) is None  # only dead letters have an origin


def test_a_topic_url_without_subscription_is_refused_naming_the_fix(spell: Spell) -> None:
    name = unique_name("topic")
    for sub in ("billing", "audit"):
        cloudqueue.declare(spell(name, sub))
    for call in (lambda: stats(spell(name, None)), lambda: peek(spell(name, None))):
        with pytest.raises(InvalidArgument, match=r"subscription.*'audit', 'billing'.*subscription="):
            call()


def test_a_destination_not_created_yet_is_empty(spell: Spell) -> None:
    url = spell(unique_name("absent"), None)
    assert counts(url) == (0, 0, 0, 0, 0, 0) and stats(url).oldest_age is None
    assert peek(url) == []


@pytest.mark.parametrize("size", [0, 1001])
def test_peek_refuses_sizes_outside_1_to_1000(spell: Spell, size: int) -> None:
    with pytest.raises(InvalidArgument, match=rf"1 to 1000 messages, not {size}"):
        peek(spell(unique_name("size"), None), size)


def test_redrive_source_names_the_queue_or_subscription_a_dead_letter_queue_serves(
    spell: Spell,
) -> None:
    queue, topic = unique_name("q"), unique_name("t")
    cloudqueue.declare(spell(queue, None), dead_letter_after=2)
    cloudqueue.declare(spell(topic, "billing"), dead_letter_after=2)
    for source in (spell(queue, None), spell(topic, "billing")):
        provider, dead = hooks(cloudqueue.dead_letter_url(source))
        assert str(provider.redrive_source(dead)) == source

    provider, plain = hooks(spell(queue, None))
    with pytest.raises(InvalidArgument, match=r"not a dead-letter queue.*to="):
        provider.redrive_source(plain)
    # 'x-y-dlq' holds the dead letters of queue 'x-y' and of subscription 'y' of 'x'.
    cloudqueue.declare(spell(f"{topic}-billing", None))
    with pytest.raises(InvalidArgument, match=r"several sources.*to="):
        provider.redrive_source(hooks(cloudqueue.dead_letter_url(spell(topic, "billing")))[1])


def test_a_redrive_target_of_one_subscription_never_reaches_its_siblings(
    spell: Spell, subscription_driver: Callable[[str], SubscriptionDriver]
) -> None:
    name = unique_name("fan")
    target_url, sibling_url = spell(name, "billing"), spell(name, "audit")
    # The target's filter would not let the message in: a redrive puts back what
    # was routed there before, whatever the filter says now.
    cloudqueue.declare(target_url, filter=where("kind").equals("invoice"))
    cloudqueue.declare(sibling_url)
    provider, parsed = hooks(target_url)
    target = provider.open_redrive_target(parsed)
    try:
        (message_id,) = target.send_batch([Message(b"back", attributes={"kind": "refund"})])
    finally:
        target.close()
    (delivery,) = subscription_driver(target_url).receive_batch(10, 5)
    assert (delivery.id, delivery.body) == (message_id, b"back")
    assert counts(sibling_url) == (0, 0, 0, 0, 0, 0)
    assert subscription_driver(sibling_url).receive_batch(10, 0.2) == []

    # A queue is its own target.
    queue = spell(unique_name("q"), None)
    provider, parsed = hooks(queue)
    target = provider.open_redrive_target(parsed)
    try:
        target.send_batch([Message(b"q")])
    finally:
        target.close()
    assert counts(queue)[0] == 1


# -- SQLite: counters shared by processes, and files of schema version 3 ------------------

_SEND_AND_TAKE = """
import sys, cloudqueue
url, count = sys.argv[1], int(sys.argv[2])
with cloudqueue.open_producer(url) as producer:
    for start in range(0, count, 7):
        producer.send_batch([cloudqueue.Message(str(n)) for n in range(start, min(start + 7, count))])
taken = 0
with cloudqueue.open_consumer(url, max_in_flight=5) as consumer:
    while taken < count:
        for message in consumer.receive(max_messages=5, wait=1):
            taken += 1
            message.ack()
print(taken)
"""


def test_sqlite_counters_are_exact_across_processes_sharing_a_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db?queue=work"
    cloudqueue.declare(url)
    count = 150
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _SEND_AND_TAKE, url, str(count)],
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert sum(int(out) for out in outputs) == 2 * count
    assert counts(url) == (0, 0, 0, 0, 2 * count, 2 * count)


_VERSION_3_TABLES = VERSION_3_TABLES + """
INSERT INTO topics (name) VALUES ('jobs'), ('jobs-dlq');
INSERT INTO subscriptions (topic, name) VALUES ('jobs', ''), ('jobs-dlq', '');
INSERT INTO messages (subscription, id, body, attributes, enqueued_at, visible_at)
VALUES (1, 'old-1', X'6F6C64', NULL, 0, 0),
       (2, 'old-dead', X'646561', '{"dead_letter_reason": "broken", "k": "v"}', 0, 0);
PRAGMA user_version = 3;
"""


def test_sqlite_a_version_3_file_is_upgraded_and_counts_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as old:
        old.executescript(_VERSION_3_TABLES)
    old.close()
    url = f"sqlite:///{path}?queue=jobs"
    # Counting starts with the upgrade: what the file held before was never counted.
    assert counts(url) == (1, 0, 0, 1, 0, 0)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"new")
    assert counts(url) == (2, 0, 0, 1, 1, 0)
    dead_url = cloudqueue.dead_letter_url(url)
    (dead,) = peek(dead_url)
    provider, parsed = hooks(dead_url)
    facts = provider.dead_letter_facts(parsed, dead)  # dead-lettered before origins were kept
    assert (facts.reason, facts.delivery_count, facts.attributes) == ("broken", None, {"k": "v"})
    with sqlite3.connect(path) as upgraded:
        (version,) = upgraded.execute("PRAGMA user_version").fetchone()
        columns = {row[1] for row in upgraded.execute("PRAGMA table_info(subscriptions)")}
    upgraded.close()
    assert version == SCHEMA_VERSION == 4
    assert {"total_sent", "total_received"} <= columns
