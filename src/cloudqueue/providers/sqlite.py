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
"""

from __future__ import annotations

import os
import threading

from .._url import Url
from ..driver import Capabilities, Declaration, Provider, SubscriptionDriver, TopicDriver
from ..errors import InvalidArgument
from ..hookspecs import hookimpl
from ._broker import dead_letter_name
from ._sqlite import store
from ._sqlite.database import DEFAULT_BUSY_TIMEOUT, Database, Options
from ._sqlite.drivers import SqliteSubscription, SqliteTopic, capabilities_for

__all__ = ["SqliteProvider", "cloudqueue_providers"]

_FORM = "sqlite:///relative/path.db?queue=<name> or sqlite:////absolute/path.db?queue=<name>"


class SqliteProvider(Provider):
    """``sqlite:///<file>?queue=<name>[&subscription=<name>]``; one pool per file."""

    schemes = ("sqlite",)
    distribution = "cloudqueue"
    parameters = frozenset({"queue", "subscription", "synchronous", "busy_timeout"})

    def __init__(self) -> None:
        self._databases: dict[tuple[str, Options], Database] = {}
        self._lock = threading.Lock()

    # -- URLs ---------------------------------------------------------------------------

    @staticmethod
    def _names(url: Url) -> tuple[str, str]:
        queue = url.param("queue")
        if not queue:
            raise InvalidArgument(f"SQLite URLs name the queue or topic with ?queue=<name>: {_FORM}")
        subscription = url.subscription
        if subscription == "":
            raise InvalidArgument("the subscription parameter must not be empty")
        return queue, subscription or ""

    def _database(self, url: Url) -> Database:
        if url.host or url.username is not None:
            raise InvalidArgument(
                f"SQLite URLs have no host: the file path follows three slashes ({_FORM}), not {url}"
            )
        path = url.path[1:]  # the slash after the empty host is not part of the path
        if not path:
            raise InvalidArgument(f"SQLite URLs name a database file: {_FORM}, not {url}")
        options = Options(
            synchronous=(url.param("synchronous") or "normal").lower(),
            busy_timeout=url.float_param("busy_timeout", DEFAULT_BUSY_TIMEOUT),
        )
        key = (os.path.abspath(path), options)
        with self._lock:
            database = self._databases.get(key)
            if database is None:
                database = self._databases[key] = Database(key[0], options)
            return database

    # -- Provider -----------------------------------------------------------------------

    def open_topic(self, url: Url) -> TopicDriver:
        topic, _ = self._names(url)
        if url.subscription is not None:
            raise InvalidArgument(f"a producer sends to a destination, not to a subscription: {url}")
        database = self._database(url)
        database.write(
            lambda cursor: store.ensure_topic(cursor, topic, create_queue=True), "opening a topic in"
        )
        return SqliteTopic(database, topic)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        topic, subscription = self._names(url)
        database = self._database(url)
        sub_id = database.write(
            lambda cursor: store.ensure_subscription(cursor, topic, subscription),
            "opening a subscription in",
        )
        return SqliteSubscription(database, topic, subscription, sub_id)

    def capabilities(self, url: Url) -> Capabilities:
        topic, _ = self._names(url)
        database = self._database(url)
        return capabilities_for(
            database.read(lambda cursor: store.topic_settings(cursor, topic), "reading settings from")
        )

    def declare(self, url: Url, declaration: Declaration) -> None:
        topic, subscription = self._names(url)
        database = self._database(url)
        database.write(
            lambda cursor: store.declare(cursor, topic, subscription, declaration), "declaring in"
        )
        database.settings_generation += 1

    def dead_letter_url(self, url: Url) -> Url:
        topic, subscription = self._names(url)
        return url.with_params(queue=dead_letter_name(topic, subscription), subscription=None)

    def purge(self, url: Url) -> None:
        topic, subscription = self._names(url)
        self._database(url).write(
            lambda cursor: store.purge(cursor, topic, subscription), "purging in"
        )

    def delete(self, url: Url) -> None:
        topic, _ = self._names(url)
        database = self._database(url)
        database.write(lambda cursor: store.delete(cursor, topic, url.subscription), "deleting in")
        database.signal.notify()

    def close(self) -> None:
        with self._lock:
            databases, self._databases = list(self._databases.values()), {}
        for database in databases:
            database.close()


_PROVIDER = SqliteProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
