"""SQLite-specific dead-lettering: a lease that runs out on the last allowed
delivery is moved by the next receive that takes the row (as SQS does on the
receive that would exceed maxReceiveCount), and files of schema version 1 are
upgraded in place."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import cloudqueue
from cloudqueue.providers._sqlite.schema import SCHEMA_VERSION


def test_a_lease_that_runs_out_on_the_last_attempt_is_dead_lettered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db?queue=poison"
    cloudqueue.declare(url, lease=1.0, dead_letter_after=2)
    with cloudqueue.open_producer(url) as producer:
        message_id = producer.send(b"poison", attributes={"kind": "bad"})
        producer.send(b"fine")
    # No lease extension: every lease of the unsettled message runs out.
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        attempts: list[int | None] = []
        fine: list[bytes] = []
        while len(attempts) < 2:
            for message in consumer.receive(max_messages=10, wait=5):
                if message.id == message_id:
                    attempts.append(message.delivery_attempt)  # left unsettled
                else:
                    fine.append(message.body)
                    message.ack()
        assert attempts == [1, 2] and fine == [b"fine"]
        # Its second lease runs out; the receive that would be its third moves it.
        assert consumer.receive(max_messages=10, wait=2.5) == []
    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url)) as dead:
        (moved,) = dead.receive(max_messages=10, wait=5)
        moved.ack()
    assert moved.body == b"poison" and moved.attributes == {"kind": "bad"}


def test_a_version_1_file_is_upgraded_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}?queue=q"
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"kept")
    with sqlite3.connect(path) as old:  # what version 1 left: its index and number
        old.execute("CREATE INDEX messages_leased ON messages (subscription, visible_at) "
                    "WHERE lease_id IS NOT NULL")
        old.execute("PRAGMA user_version = 1")
    old.close()
    # A new process, so the file is opened afresh (this one's provider keeps it open).
    script = (
        "import cloudqueue, sys\n"
        "with cloudqueue.open_consumer(sys.argv[1]) as c:\n"
        "    (m,) = c.receive(max_messages=1, wait=5)\n"
        "    m.ack()\n"
        "    print(m.body.decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "kept", out
    with sqlite3.connect(path) as upgraded:
        (version,) = upgraded.execute("PRAGMA user_version").fetchone()
        indexes = {
            name for (name,) in upgraded.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    upgraded.close()
    assert version == SCHEMA_VERSION
    assert "messages_leased" not in indexes and "messages_by_visibility" in indexes
