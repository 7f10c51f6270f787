"""The SQLite provider: a durable queue in one local file, shared by processes.

URLs::

    sqlite:///cloudqueue.db?queue=orders                     # relative to the working directory
    sqlite:////var/lib/app/queues.db?queue=orders            # absolute (four slashes)
    sqlite:///events.db?queue=events&subscription=billing    # one subscription of a topic

Parameters: ``queue`` (required), ``subscription``, ``synchronous``
(``normal``, the default, survives process crashes; ``full`` or ``extra`` also
power loss; ``off`` neither) and ``busy_timeout`` (seconds to wait for another
process's write lock, default 5). The file, its tables and the destination are
created on first use. See docs/sqlite.md for durability and concurrency.

A file is open in this process while a producer or consumer of it is open
(and for the duration of ``declare``, ``purge``, ``delete``, ``capabilities``
and the operations hooks ``stats``, ``peek`` and ``redrive_source``): closing
the last one closes its connections and its checkpoint thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .._message import encoded
from .._url import Url
from ..driver import (
    Capabilities,
    DeadLetterFacts,
    Declaration,
    Delivery,
    Provider,
    QueueStats,
    SubscriptionDriver,
    TopicDriver,
)
from ..errors import InvalidArgument
from ..hookspecs import hookimpl
from ._broker import dead_letter_name
from ._operations import check_peek_size, dead_letter_facts, only_source
from ._sqlite import store
from ._sqlite.database import DEFAULT_BUSY_TIMEOUT, Database, Options, Registry
from ._sqlite.drivers import SqliteSubscription, SqliteTopic, capabilities_for

__all__ = ["SqliteProvider", "cloudqueue_providers"]

_FORM = "sqlite:///relative/path.db?queue=<name> or sqlite:////absolute/path.db?queue=<name>"


class SqliteProvider(Provider):
    """``sqlite:///<file>?queue=<name>[&subscription=<name>]``; one pool per file,
    open while something uses it."""

    schemes = ("sqlite",)
    distribution = "cloudqueue"
    parameters = frozenset({"queue", "subscription", "synchronous", "busy_timeout"})
    supports_filters = True

    def __init__(self) -> None:
        self.registry = Registry()

    # -- URLs ---------------------------------------------------------------------------

    @staticmethod
    def _names(url: Url) -> tuple[str, str]:
        queue = url.param("queue")
        if not queue:
            raise InvalidArgument(f"SQLite URLs name the queue or topic with ?queue=<name>: {_FORM}")
        subscription = url.subscription
        if subscription == "":
            raise InvalidArgument("the subscription parameter must not be empty")
        for name, value in (("queue", queue), ("subscription", subscription)):
            if value is not None:
                encoded(value, f"URL parameter {name}")
        return queue, subscription or ""

    @staticmethod
    def _location(url: Url) -> tuple[str, Options]:
        if url.host or url.username is not None:
            raise InvalidArgument(
                f"SQLite URLs have no host: the file path follows three slashes ({_FORM}), not {url}"
            )
        path = url.path[1:]  # the slash after the empty host is not part of the path
        if not path:
            raise InvalidArgument(f"SQLite URLs name a database file: {_FORM}, not {url}")
        if path == ":memory:" or path.startswith("file:"):
            raise InvalidArgument(
                f"SQLite URLs name a database file, not {path!r}: an in-process database "
                "cannot be shared between a producer and a consumer (each opens its own "
                "connection); use memory://<name> for an in-process queue, or a file path"
            )
        if "\0" in path:
            raise InvalidArgument("the SQLite database path must not contain a NUL character")
        encoded(path, "SQLite database path")
        options = Options(
            synchronous=str(url.param("synchronous", "normal")).lower(),
            busy_timeout=url.float_param("busy_timeout", DEFAULT_BUSY_TIMEOUT),
        )
        return os.path.abspath(path), options

    def _acquire(self, url: Url) -> Database:
        """The file, held open until the driver given it releases it."""
        return self.registry.acquire(*self._location(url))

    @contextmanager
    def _using(self, url: Url) -> Iterator[Database]:
        """The file, open for one call."""
        with self.registry.using(*self._location(url)) as database:
            yield database

    # -- Provider -----------------------------------------------------------------------

    def open_topic(self, url: Url) -> TopicDriver:
        topic, _ = self._names(url)
        if url.subscription is not None:
            raise InvalidArgument(f"a producer sends to a destination, not to a subscription: {url}")
        database = self._acquire(url)
        try:
            database.write(
                lambda cursor: store.ensure_topic(cursor, topic, create_queue=True),
                "opening a topic in",
            )
        except BaseException:
            self.registry.release(database)
            raise
        return SqliteTopic(database, topic, self.registry.release)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        topic, subscription = self._names(url)
        database = self._acquire(url)
        try:
            sub_id = database.write(
                lambda cursor: store.ensure_subscription(cursor, topic, subscription),
                "opening a subscription in",
            )
        except BaseException:
            self.registry.release(database)
            raise
        return SqliteSubscription(database, topic, subscription, sub_id, self.registry.release)

    def capabilities(self, url: Url) -> Capabilities:
        topic, _ = self._names(url)
        with self._using(url) as database:
            settings = database.read(
                lambda cursor: store.topic_settings(cursor, topic), "reading settings from"
            )
        return capabilities_for(settings)

    def declare(self, url: Url, declaration: Declaration) -> None:
        topic, subscription = self._names(url)
        with self._using(url) as database:
            database.write(
                lambda cursor: store.declare(cursor, topic, subscription, declaration),
                "declaring in",
            )
            database.settings_generation += 1

    def dead_letter_url(self, url: Url) -> Url:
        topic, subscription = self._names(url)
        return url.with_params(queue=dead_letter_name(topic, subscription), subscription=None)

    def purge(self, url: Url) -> None:
        topic, subscription = self._names(url)
        with self._using(url) as database:
            database.write(lambda cursor: store.purge(cursor, topic, subscription), "purging in")

    def delete(self, url: Url) -> None:
        topic, _ = self._names(url)
        with self._using(url) as database:
            database.write(
                lambda cursor: store.delete(cursor, topic, url.subscription), "deleting in"
            )
            database.signal.notify()

    # -- operations -------------------------------------------------------------------

    supports_peek = True

    def stats(self, url: Url) -> QueueStats:
        topic, _ = self._names(url)
        with self._using(url) as database:
            return database.write(
                lambda cursor: store.stats(cursor, topic, url.subscription), "counting in"
            )

    def peek(self, url: Url, max_messages: int) -> list[Delivery]:
        topic, _ = self._names(url)
        check_peek_size(max_messages)
        with self._using(url) as database:
            return database.write(
                lambda cursor: store.peek_rows(cursor, topic, url.subscription, max_messages),
                "peeking in",
            )

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        return dead_letter_facts(delivery)

    def redrive_source(self, url: Url) -> Url:
        name, subscription = self._names(url)
        sources: list[tuple[str, str]] = []
        if not subscription:
            with self._using(url) as database:
                sources = database.read(
                    lambda cursor: store.dead_letter_sources(cursor, name), "reading"
                )
        topic, source = only_source(str(url), sources)
        return url.with_params(queue=topic, subscription=source or None)

    def open_redrive_target(self, url: Url) -> TopicDriver:
        topic, subscription = self._names(url)
        if not subscription:
            return self.open_topic(url)
        database = self._acquire(url)
        try:  # the subscription springs into existence, as when a consumer opens it
            database.write(
                lambda cursor: store.ensure_subscription(cursor, topic, subscription),
                "opening a subscription in",
            )
        except BaseException:
            self.registry.release(database)
            raise
        return SqliteTopic(database, topic, self.registry.release, only=subscription)

    def close(self) -> None:
        """Close every file still open (registry teardown); drivers still open
        then raise ``Closed``, and opening anew opens the file again."""
        self.registry.close()


_PROVIDER = SqliteProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
