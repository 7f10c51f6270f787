"""A SQLite file is open in a process only while something uses it: closing the
last producer and consumer of a file closes its connections and its checkpoint
thread, and opening it again opens it afresh."""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue._url import parse_url
from cloudqueue.providers import sqlite as sqlite_provider
from cloudqueue.providers._sqlite import database as database_module
from cloudqueue.providers._sqlite.checkpoints import THREAD_NAME
from cloudqueue.providers._sqlite.database import Database


def checkpoint_threads(path: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{THREAD_NAME} {path}"]


def open_databases(path: Path) -> list[Database]:
    return [db for db in sqlite_provider._PROVIDER.registry.databases() if db.path == str(path)]


def open_descriptors(path: Path) -> list[str]:
    """Files of this process open on the database, its -wal or its -shm (Linux)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory listing's own descriptor, or one just closed
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def assert_closed(path: Path) -> None:
    assert checkpoint_threads(path) == []
    assert open_databases(path) == []
    if os.path.isdir("/proc/self/fd"):
        assert open_descriptors(path) == []
    # The last connection to close copied the WAL into the file and removed it.
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def receive_all(url: str, count: int) -> list[bytes]:
    bodies: list[bytes] = []
    with cloudqueue.open_consumer(url) as consumer:
        deadline = time.monotonic() + 30
        while len(bodies) < count and time.monotonic() < deadline:
            for message in consumer.receive(max_messages=100, wait=0.5):
                bodies.append(message.body)
                message.ack()
        assert consumer.receive(max_messages=100, wait=0.2) == []
    return bodies


def test_closing_the_last_producer_and_consumer_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}?queue=q"
    producer = cloudqueue.open_producer(url)
    consumer = cloudqueue.open_consumer(url)
    producer.send(b"one")
    database = producer.as_(Database)
    assert database is not None and consumer.as_(Database) is database
    assert database.users == 2 and len(checkpoint_threads(path)) == 1

    producer.close()
    assert not database.closed and database.users == 1  # the consumer still uses it
    (message,) = consumer.receive(max_messages=1, wait=5)
    message.ack()
    consumer.close()

    assert database.closed and database.users == 0 and database.connections == 0
    assert_closed(path)
    consumer.close()  # idempotent, and harmless to a file already closed
    assert_closed(path)


def test_a_closed_file_can_be_moved_and_created_anew(tmp_path: Path) -> None:
    path, moved = tmp_path / "q.db", tmp_path / "moved.db"
    url = f"sqlite:///{path}?queue=q"
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"old")
    path.rename(moved)  # nothing of this process still points at it
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"new")
    assert receive_all(url, 1) == [b"new"]
    assert receive_all(f"sqlite:///{moved}?queue=q", 1) == [b"old"]
    path.unlink()
    moved.unlink()
    assert_closed(path)
    assert_closed(moved)


def test_reopening_sees_the_data_with_new_connections_and_thread(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}?queue=q"
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(f"m{i}") for i in range(50)])
        first = producer.as_(Database)
        (first_thread,) = checkpoint_threads(path)
    assert_closed(path)
    assert not first_thread.is_alive()
    with cloudqueue.open_consumer(url) as consumer:
        second = consumer.as_(Database)
        assert second is not first and second is not None and not second.closed
        got = []
        while len(got) < 50:
            batch = consumer.receive(max_messages=50, wait=5)
            assert batch, "messages sent before the file was closed are missing"
            for message in batch:
                got.append(message.body)
                message.ack()
        (second_thread,) = checkpoint_threads(path)  # the receives wrote: a new thread
        assert second_thread is not first_thread
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(50))
    assert_closed(path)


def test_administration_calls_leave_nothing_open(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}?queue=q"
    cloudqueue.declare(url, lease=5.0, ordered=True)
    assert_closed(path)
    assert cloudqueue.capabilities(url).ordering
    assert_closed(path)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"x", ordering_key="k")
        database = producer.as_(Database)
        # While a producer is open they share its database instead.
        cloudqueue.declare(url, lease=5.0)
        cloudqueue.purge(url)
        assert open_databases(path) == [database]
        assert database is not None and database.users == 1
    assert_closed(path)
    cloudqueue.purge(url)
    cloudqueue.delete(url)
    assert_closed(path)
    with pytest.raises(cloudqueue.NotFound):
        cloudqueue.purge(f"sqlite:///{path}?queue=never-made")
    assert_closed(path)


def test_a_file_that_fails_to_open_is_not_left_open(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database " * 500)
    with pytest.raises(cloudqueue.InvalidArgument, match="not a SQLite database"):
        cloudqueue.open_producer(f"sqlite:///{path}?queue=q")
    assert_closed(path)


def test_concurrent_opens_and_closes_neither_leak_nor_fail(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}?queue=q"
    errors: list[str] = []
    sent: list[bytes] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def producers(worker: int) -> None:
        start.wait()
        for round_ in range(12):
            body = f"{worker}-{round_}".encode()
            with cloudqueue.open_producer(url) as producer:
                producer.send(body)
            with lock:
                sent.append(body)
            if round_ % 4 == 0:
                cloudqueue.capabilities(url)

    def consumers(worker: int) -> None:
        start.wait()
        for _ in range(12):
            with cloudqueue.open_consumer(url, max_in_flight=1) as consumer:
                consumer.receive(max_messages=1, wait=0)  # not acked: released or redelivered

    def guarded(target: object, worker: int) -> None:
        try:
            target(worker)  # type: ignore[operator]
        except BaseException as error:
            cause = error.__cause__
            detail = f"{error!r} caused by {cause!r} ({getattr(cause, 'sqlite_errorname', '')})"
            with lock:
                errors.append(detail + "\n" + "".join(traceback.format_tb(error.__traceback__)))

    threads = [
        threading.Thread(target=guarded, args=(producers if w % 2 else consumers, w))
        for w in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert_closed(path)
    # Leases of the unacked receives may still run (30 s): count the rows directly.
    assert len(sent) == 48
    with cloudqueue.open_producer(url) as producer:
        database = producer.as_(Database)
        assert database is not None
        count = database.read(
            lambda cursor: cursor.execute("SELECT count(*) FROM messages").fetchone()[0], "counting"
        )
    assert count == 48
    assert_closed(path)


def test_one_thread_at_a_time_opens_or_closes_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New connections creating one file at once race to switch it to WAL, and
    SQLite refuses the loser at once with SQLITE_BUSY (no busy wait): seen about
    once in 200 rounds of 8 threads. So opening and closing one file is serialized."""
    inside, most = 0, 0
    lock = threading.Lock()

    class Slow(database_module.Database):
        def __init__(self, path: str, options: database_module.Options) -> None:
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)  # widen the window a race would need
            try:
                super().__init__(path, options)
            finally:
                with lock:
                    inside -= 1

    monkeypatch.setattr(database_module, "Database", Slow)
    registry = database_module.Registry()
    path = str(tmp_path / "new.db")
    start = threading.Barrier(8)
    got: list[Database] = []

    def acquire() -> None:
        start.wait()
        database = registry.acquire(path, database_module.Options())
        with lock:
            got.append(database)

    threads = [threading.Thread(target=acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert most == 1 and len(got) == 8 and len(set(map(id, got))) == 1
    assert got[0].users == 8
    for database in got:
        registry.release(database)
    assert got[0].closed and registry.databases() == []
    assert_closed(Path(path))


# -- the driver and the provider directly ------------------------------------------------


def test_a_driver_releases_the_file_once_and_refuses_calls_after_close(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    provider = sqlite_provider.SqliteProvider()  # its own registry
    url = parse_url(f"sqlite:///{path}?queue=q")
    first, second = provider.open_topic(url), provider.open_topic(url)
    assert first.capabilities.durable  # read once, as producers do when they open
    (database,) = provider.registry.databases()
    assert database.users == 2
    first.close()
    first.close()  # idempotent: the second driver's hold is untouched
    assert database.users == 1 and not database.closed
    assert second.send_batch([cloudqueue.Message(b"x")])
    with pytest.raises(cloudqueue.Closed):
        first.send_batch([cloudqueue.Message(b"y")])
    assert first.capabilities.durable  # the last known settings, without the file
    second.close()
    assert database.closed and provider.registry.databases() == []
    assert_closed(path)


def test_close_ends_a_waiting_receive_and_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    provider = sqlite_provider.SqliteProvider()
    subscription = provider.open_subscription(parse_url(f"sqlite:///{path}?queue=q"))
    got: list[object] = []
    receiver = threading.Thread(target=lambda: got.append(subscription.receive_batch(10, 20.0)))
    receiver.start()
    time.sleep(0.2)
    started = time.monotonic()
    subscription.close()
    assert time.monotonic() - started < 2.0
    assert not receiver.is_alive()  # close returned after the receive did
    assert got == [[]]
    with pytest.raises(cloudqueue.Closed):
        subscription.receive_batch(1, 0.0)
    assert_closed(path)


def test_provider_close_closes_every_file_still_open(tmp_path: Path) -> None:
    paths = [tmp_path / "a.db", tmp_path / "b.db"]
    provider = sqlite_provider.SqliteProvider()
    topics = [provider.open_topic(parse_url(f"sqlite:///{p}?queue=q")) for p in paths]
    subscription = provider.open_subscription(parse_url(f"sqlite:///{paths[0]}?queue=q"))
    for topic in topics:
        topic.send_batch([cloudqueue.Message(b"x")])
    assert all(checkpoint_threads(p) for p in paths)
    provider.close()
    for p in paths:
        assert_closed_for(provider, p)
    with pytest.raises(cloudqueue.Closed):
        topics[0].send_batch([cloudqueue.Message(b"y")])
    for topic in topics:
        topic.close()  # harmless after the provider closed
    subscription.close()
    # The provider still works: the file opens again.
    topic = provider.open_topic(parse_url(f"sqlite:///{paths[0]}?queue=q"))
    topic.send_batch([cloudqueue.Message(b"z")])
    topic.close()
    assert_closed_for(provider, paths[0])


def assert_closed_for(provider: sqlite_provider.SqliteProvider, path: Path) -> None:
    assert [db for db in provider.registry.databases() if db.path == str(path)] == []
    assert_closed(path)
