"""The RabbitMQ provider: ``amqp[s]://user:password@host:port/<vhost>?queue=<name>`` and
``...?topic=<exchange>&subscription=<name>`` (see :mod:`._names` for the URL rules).

Registered under the ``cloudqueue.providers`` entry point group. All AMQP work runs on one
event loop thread per provider (:mod:`._loop` says why aio-pika, measured); each producer
and consumer has its own connection and channel. See ``docs/providers/rabbitmq.md``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cloudqueue.driver import (
    Capabilities,
    DeadLetterFacts,
    Declaration,
    Delivery,
    Provider,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.hookspecs import hookimpl

if TYPE_CHECKING:
    from ._loop import LoopThread

# aio-pika is imported when a URL is first used, not when the plugin registry loads this.

__all__ = ["RabbitMqProvider", "cloudqueue_providers"]


class RabbitMqProvider(Provider):
    schemes = ("amqp", "amqps")
    distribution = "cloudqueue-rabbitmq"
    parameters = frozenset({"queue", "topic", "subscription", "lease"})

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: LoopThread | None = None

    def _loop(self) -> LoopThread:
        with self._lock:
            if self._thread is None:
                from ._loop import LoopThread

                self._thread = LoopThread()
            return self._thread

    def open_topic(self, url: Url) -> TopicDriver:
        from ._names import names_of
        from ._publish import RabbitTopic

        return RabbitTopic(self._loop(), names_of(url))

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        from ._names import names_of
        from ._subscribe import RabbitSubscription

        return RabbitSubscription(self._loop(), names_of(url))

    def capabilities(self, url: Url) -> Capabilities:
        from ._capabilities import CAPABILITIES
        from ._names import names_of

        names_of(url)  # refuse a malformed URL here too
        return CAPABILITIES

    def declare(self, url: Url, declaration: Declaration) -> None:
        from . import _admin
        from ._names import names_of

        self._loop().run(_admin.declare(names_of(url), declaration))

    def dead_letter_url(self, url: Url) -> Url:
        from ._names import names_of

        return url.with_params(
            queue=names_of(url).dead_letter_queue, topic=None, subscription=None
        )

    def purge(self, url: Url) -> None:
        from . import _admin
        from ._names import names_of

        self._loop().run(_admin.purge(names_of(url)))

    def delete(self, url: Url) -> None:
        from . import _admin
        from ._names import names_of

        self._loop().run(_admin.delete(names_of(url)))

    # -- operations (cloudqueue.ops): no native peek or stats (AMQP has no browse) --------

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        from . import _ops

        return _ops.dead_letter_facts(delivery)

    def redrive_source(self, url: Url) -> Url:
        from . import _ops

        return _ops.redrive_source(url)

    def open_redrive_target(self, url: Url) -> TopicDriver:
        """Straight to the queue (a subscription's own queue): never the siblings."""
        from . import _ops
        from ._publish import RabbitTopic

        return RabbitTopic(self._loop(), _ops.direct(url))

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()


_PROVIDER = RabbitMqProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
