"""The SQLite topic and subscription drivers.

Calls block on disk I/O, so the asyncio twins stay the driver interface's
defaults (a worker thread each).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterable, Sequence

from ..._message import Message
from ...driver import BatchErrors, Capabilities, Delivery, SubscriptionDriver, TopicDriver
from ...errors import InvalidArgument, QueueError
from .. import memory
from . import store
from .database import Database

__all__ = ["SqliteSubscription", "SqliteTopic", "capabilities_for"]

#: Capabilities are read on every send: settings changed by another process are
#: picked up within this many seconds (at once when declared in this process).
SETTINGS_TTL = 1.0
#: Polling for rows sent by other processes: from the first to the last interval.
POLL_FIRST, POLL_LAST = 0.002, 0.05


def capabilities_for(settings: tuple[bool, bool] | None) -> Capabilities:
    """The memory provider's capabilities, durable, for a topic's ``(ordered, deduplicated)``."""
    ordered, deduplicated = settings or (False, False)
    return dataclasses.replace(
        memory.capabilities_for(None), ordering=ordered, deduplication=deduplicated, durable=True
    )


class _Settings:
    """A topic's settings, re-read when stale."""

    def __init__(self, database: Database, topic: str) -> None:
        self._database = database
        self._topic = topic
        self._value: Capabilities | None = None
        self._read_at = 0.0
        self._generation = -1

    def capabilities(self) -> Capabilities:
        database = self._database
        if (
            self._value is None
            or self._generation != database.settings_generation
            or time.monotonic() - self._read_at > SETTINGS_TTL
        ):
            generation = database.settings_generation
            settings = database.read(
                lambda cursor: store.topic_settings(cursor, self._topic), "reading settings from"
            )
            self._value = capabilities_for(settings)
            self._read_at, self._generation = time.monotonic(), generation
        return self._value


class SqliteTopic(TopicDriver):
    def __init__(self, database: Database, topic: str) -> None:
        self._database = database
        self._topic = topic
        self._settings = _Settings(database, topic)

    @property
    def capabilities(self) -> Capabilities:
        return self._settings.capabilities()

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        ids = self._database.write(
            lambda cursor: store.publish(cursor, self._topic, messages), "sending to"
        )
        self._database.signal.notify()
        return ids

    def native_objects(self) -> Iterable[object]:
        return (self._database,)


class SqliteSubscription(SubscriptionDriver):
    def __init__(self, database: Database, topic: str, subscription: str, sub_id: int) -> None:
        self._database = database
        self._sub_id = sub_id
        self._describe = repr(topic) + (f" subscription {subscription!r}" if subscription else "")
        self._settings = _Settings(database, topic)
        self._closed = threading.Event()
        # 63 random bits per receive: tokens of different leases never match.
        self._lease_ids = iter(lambda: int.from_bytes(os.urandom(8), "big") >> 1, None)

    @property
    def capabilities(self) -> Capabilities:
        return self._settings.capabilities()

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        """Lease what is visible; else wait, polling other processes' writes with a
        growing interval, woken at once by this process's, never past the next
        row's visibility (a delay or a lease running out)."""
        database, signal = self._database, self._database.signal
        give_up = time.monotonic() + wait
        interval = POLL_FIRST
        seen = signal.generation
        taken = self._lease(max_messages)  # callers come when they expect messages
        while not taken:
            # Idle: look with a read (no write lock taken) until something is visible.
            exists, earliest = database.read(
                lambda cursor: store.peek(cursor, self._sub_id), "receiving from"
            )
            if not exists or (earliest is not None and earliest <= time.time()):
                seen = signal.generation
                taken = self._lease(max_messages)
                if taken:
                    break
                earliest = None  # visible rows held back by their ordering keys: poll
            remaining = give_up - time.monotonic()
            if remaining <= 0 or self._closed.is_set():
                return []
            pause = min(remaining, interval)
            if earliest is not None:
                pause = min(pause, max(0.0, earliest - time.time()))
            signal.wait(seen, pause)
            seen = signal.generation
            interval = min(interval * 2, POLL_LAST)
        return taken

    def _lease(self, max_messages: int) -> list[Delivery]:
        lease_id = next(self._lease_ids)
        result = self._database.write(
            lambda cursor: store.lease(cursor, self._sub_id, self._describe, max_messages, lease_id),
            "receiving from",
        )
        return result.deliveries

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        self._database.write(lambda cursor: store.ack(cursor, tokens), "acknowledging in")  # type: ignore[arg-type]
        self._database.signal.notify()  # may free an ordering key
        return None

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        self._database.write(
            lambda cursor: store.nack(cursor, self._sub_id, entries),  # type: ignore[arg-type]
            "giving back to",
        )
        self._database.signal.notify()
        return None

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        self._database.write(
            lambda cursor: store.release(cursor, tokens),  # type: ignore[arg-type]
            "giving back to",
        )
        self._database.signal.notify()
        return None

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        self._database.write(
            lambda cursor: store.dead_letter(cursor, self._sub_id, entries),  # type: ignore[arg-type]
            "dead-lettering in",
        )
        self._database.signal.notify()
        return None

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        extended = self._database.write(
            lambda cursor: store.extend(cursor, entries), "extending leases in"  # type: ignore[arg-type]
        )
        now = time.monotonic()
        return [
            now + seconds if ok else InvalidArgument("the lease has already ended or been settled")
            for ok, (_, seconds) in zip(extended, entries, strict=True)
        ]

    def close(self) -> None:
        """Stop waiting receives of this driver (they return empty within a poll interval)."""
        self._closed.set()
        self._database.signal.notify()

    def native_objects(self) -> Iterable[object]:
        return (self._database,)
