"""The Google Cloud Pub/Sub provider: ``pubsub://<project>/<topic>[?subscription=<name>]``.

Registered under the ``cloudqueue.providers`` entry point group. Producers publish to the
topic; consumers read one of its subscriptions. Credentials come from Google's usual
configuration (Application Default Credentials), or from the user's own objects passed as
``sdk=PubSubSdk(...)``; with ``PUBSUB_EMULATOR_HOST=host:port`` set, the clients cloudqueue makes
talk plain gRPC to that server (Google's emulator or
:class:`cloudqueue_pubsub.testing.PubSubServer`). See ``docs/providers/pubsub.md``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cloudqueue.driver import (
    Capabilities,
    DeadLetterFacts,
    Declaration,
    Delivery,
    Provider,
    QueueStats,
    SdkObjects,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.hookspecs import hookimpl

from ._capabilities import TOPIC_CAPABILITIES, subscription_capabilities
from ._names import names_of
from ._sdk import PubSubSdk

if TYPE_CHECKING:
    from ._clients import ClientPool, Clients

# The Google client modules take about half a second to import: they are imported when a
# URL is first used, not when the plugin registry loads this module.

__all__ = ["PubSubProvider", "cloudqueue_providers"]


class PubSubProvider(Provider):
    """Opens drivers without touching the network; clients are made on first use."""

    schemes = ("pubsub",)
    distribution = "cloudqueue-pubsub"
    parameters = frozenset({"subscription"})
    supports_filters = True
    sdk_type: type[SdkObjects] | None = PubSubSdk

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ClientPool | None = None

    def _clients(self, url: Url) -> Clients:
        """Clients for ``url``'s drivers: shared ones, or with ``url.sdk`` a private set
        that the caller releases (drivers do on close)."""
        with self._lock:
            if self._pool is None:
                from ._clients import ClientPool

                self._pool = ClientPool()
            pool = self._pool
        sdk = url.sdk
        assert sdk is None or isinstance(sdk, PubSubSdk)  # checked by the core against sdk_type
        # Read at open time, so a test can point one process at several local servers.
        return pool.get(os.environ.get("PUBSUB_EMULATOR_HOST") or None, sdk)

    @contextlib.contextmanager
    def _using(self, url: Url) -> Iterator[Clients]:
        """Clients for one provisioning or operations call, released when it ends."""
        clients = self._clients(url)
        try:
            yield clients
        finally:
            clients.release()

    def open_topic(self, url: Url) -> TopicDriver:
        # A consumer's URL works for a producer too: it publishes to the URL's topic.
        names = names_of(url)
        from ._publish import PubSubTopic

        return PubSubTopic(self._clients(url), names)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        from ._subscribe import PubSubSubscription

        names = names_of(url)
        subscription = names.required_subscription(url)
        return PubSubSubscription(self._clients(url), names, subscription)

    def capabilities(self, url: Url) -> Capabilities:
        names = names_of(url)
        if names.subscription is None:
            return TOPIC_CAPABILITIES
        from . import _admin

        with self._using(url) as clients:
            return subscription_capabilities(_admin.read_subscription(clients, names))

    def declare(self, url: Url, declaration: Declaration) -> None:
        from . import _admin

        with self._using(url) as clients:
            _admin.declare(clients, names_of(url), declaration)

    def dead_letter_url(self, url: Url) -> Url:
        dead = names_of(url).dead_letter
        return url.replace(
            host=dead.project,
            path=f"/{dead.topic_id}",
            params={"subscription": dead.subscription_id},
        )

    def purge(self, url: Url) -> None:
        from . import _admin

        names = names_of(url)
        subscription = names.required_subscription(url)
        with self._using(url) as clients:
            _admin.purge(clients, names, subscription)

    def delete(self, url: Url) -> None:
        from . import _admin

        with self._using(url) as clients:
            _admin.delete(clients, names_of(url))

    # -- operations (cloudqueue.ops) -------------------------------------------------
    # No native peek (Pub/Sub has none): cloudqueue.ops pulls and gives back.

    def stats(self, url: Url) -> QueueStats:
        from . import _ops

        with self._using(url) as clients:
            return _ops.stats(clients, url)

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        from . import _ops

        return _ops.dead_letter_facts(delivery)

    def redrive_source(self, url: Url) -> Url:
        from . import _ops

        with self._using(url) as clients:
            return _ops.redrive_source(clients, url)

    def open_redrive_target(self, url: Url) -> TopicDriver:
        """The topic's driver, once it is sure the subscription is the topic's only one."""
        from . import _ops

        with self._using(url) as clients:
            _ops.redrive_target_check(clients, url)
        return self.open_topic(url)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


_PROVIDER = PubSubProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
