"""The Azure Service Bus provider: ``azuresb://<namespace>/<queue-or-topic>[?subscription=<name>]``.

Credentials: the ``connection_string`` URL parameter (secret: never shown), else
``AZURE_SERVICEBUS_CONNECTION_STRING``, else ``DefaultAzureCredential`` for
``<namespace>.servicebus.windows.net`` (or the namespace as given when it has a dot).
Emulator connection strings (``UseDevelopmentEmulator=true``) work, including the
local broker of :mod:`cloudqueue_azure_servicebus.testing`. ``sdk=ServiceBusSdk(...)``
brings the user's own credential, ``ServiceBusClient`` and administration client (see
``_sdk.py``); they outrank the URL's credentials.

Async twins: the driver methods run the synchronous SDK in worker threads (the
interface's defaults). ``azure.servicebus.aio`` was not adopted: it has not been
measured to beat worker threads here, and the portable layer already overlaps
pulls, sends and settlements, so the threads are rarely the bottleneck.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from cloudqueue.driver import (
    Capabilities,
    DeadLetterFacts,
    Declaration,
    Delivery,
    Provider,
    QueueStats,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.errors import InvalidArgument, Unsupported, translate
from cloudqueue.hookspecs import hookimpl

from ._admin import EntityCatalog, capabilities_for
from ._clients import NamespaceClients
from ._errors import ERRORS
from ._names import PARAMETERS, SECRET_PARAMETERS, Credentials, Target, credentials_for, target_of
from ._operations import Peekers, dead_letter_facts, stats
from ._receiving import ServiceBusSubscription, open_receiver
from ._sdk import ServiceBusSdk
from ._sending import ServiceBusTopic

__all__ = ["ServiceBusProvider", "cloudqueue_providers"]


class ServiceBusProvider(Provider):
    schemes = ("azuresb",)
    distribution = "cloudqueue-azure-servicebus"
    parameters = PARAMETERS
    secret_parameters = SECRET_PARAMETERS
    supports_filters = True
    supports_peek = True
    sdk_type = ServiceBusSdk

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[Credentials, EntityCatalog] = {}
        # Catalogs on the user's SDK objects live while something uses them (a driver, or
        # one provisioning call), so that clients built from the user's credential close
        # when the user's work does, and a bundle leaves nothing behind in this
        # process-wide provider. Keyed by the bundle's identity: two bundles never share.
        self._borrowed: dict[tuple[Credentials, int], _Borrowed] = {}
        self._peekers = Peekers()

    def _acquire(self, url: Url) -> tuple[EntityCatalog, Target, Callable[[], None]]:
        """The catalog for ``url`` and the call that gives it back."""
        target = target_of(url)
        credentials = credentials_for(url)
        sdk = url.sdk
        if sdk is None:
            with self._lock:
                catalog = self._catalogs.get(credentials)
                if catalog is None:
                    catalog = self._catalogs[credentials] = EntityCatalog(NamespaceClients(credentials))
            return catalog, target, _nothing
        if not isinstance(sdk, ServiceBusSdk):  # the core checks this before calling
            raise InvalidArgument(
                f"sdk= must be a cloudqueue_azure_servicebus.ServiceBusSdk, not {type(sdk).__qualname__}"
            )
        key = (credentials, id(sdk))
        with self._lock:
            borrowed = self._borrowed.get(key)
            if borrowed is None:
                borrowed = self._borrowed[key] = _Borrowed(EntityCatalog(NamespaceClients(credentials, sdk)))
            borrowed.users += 1
        return borrowed.catalog, target, _once(lambda: self._give_back(key, borrowed))

    def _give_back(self, key: tuple[Credentials, int], borrowed: _Borrowed) -> None:
        with self._lock:
            borrowed.users -= 1
            if borrowed.users > 0 or self._borrowed.get(key) is not borrowed:
                return
            del self._borrowed[key]
        self._peekers.forget(borrowed.catalog)
        borrowed.catalog.clients.close()  # closes only what was built here, never the user's

    @contextlib.contextmanager
    def _using(self, url: Url) -> Iterator[tuple[EntityCatalog, Target]]:
        catalog, target, give_back = self._acquire(url)
        try:
            yield catalog, target
        finally:
            give_back()

    def open_topic(self, url: Url) -> TopicDriver:
        catalog, target, give_back = self._acquire(url)
        if target.subscription is not None or target.dead_letter:
            give_back()
            raise InvalidArgument(f"a producer sends to a queue or topic, not to a subscription: {url}")
        return ServiceBusTopic(catalog, target, give_back)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        catalog, target, give_back = self._acquire(url)
        return ServiceBusSubscription(catalog, target, give_back)

    def capabilities(self, url: Url) -> Capabilities:
        with self._using(url) as (catalog, target):
            return capabilities_for(target, catalog.info(target))

    def declare(self, url: Url, declaration: Declaration) -> None:
        with self._using(url) as (catalog, target):
            catalog.declare(target, declaration)

    def dead_letter_url(self, url: Url) -> Url:
        target_of(url)  # validates
        return url.with_params(subqueue="deadletter")

    def purge(self, url: Url) -> None:
        with self._using(url) as (catalog, target):
            catalog.purge(target, lambda t, **options: open_receiver(catalog, t, **options))

    def delete(self, url: Url) -> None:
        with self._using(url) as (catalog, target):
            if target.dead_letter:
                raise InvalidArgument("a $deadletterqueue goes away with its entity; delete the entity")
            catalog.delete(target)

    # -- operations (see _operations.py) ------------------------------------------

    def stats(self, url: Url) -> QueueStats:
        with self._using(url) as (catalog, target):
            return stats(catalog, target, self._peekers)

    def peek(self, url: Url, max_messages: int) -> list[Delivery]:
        with self._using(url) as (catalog, target):
            return self._peekers.peek(catalog, target, max_messages)

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        return dead_letter_facts(target_of(url), delivery)

    def redrive_source(self, url: Url) -> Url:
        if not target_of(url).dead_letter:
            raise InvalidArgument(
                f"{url} is not a dead-letter subqueue: a Service Bus dead-letter URL ends in "
                "subqueue=deadletter"
            )
        return url.with_params(subqueue=None)

    def open_redrive_target(self, url: Url) -> TopicDriver:
        """A queue: its sender. A subscription: the topic's sender, but only while the
        subscription is the topic's only one (Service Bus cannot send to one
        subscription; a send to the topic reaches them all). Checked once, when the
        redrive starts: a subscription added during the redrive receives its messages."""
        if target_of(url).subscription is None:
            return self.open_topic(url)
        catalog, target, give_back = self._acquire(url)
        try:
            self._refuse_redrive_with_siblings(catalog, target)
        except BaseException:
            give_back()
            raise
        return ServiceBusTopic(catalog, replace(target, subscription=None), give_back)

    def _refuse_redrive_with_siblings(self, catalog: EntityCatalog, target: Target) -> None:
        if target.dead_letter:
            raise InvalidArgument(f"a $deadletterqueue takes no sends: {target.describe()}")
        with translate(ERRORS, f"listing the subscriptions of Service Bus topic {target.entity}"):
            names = [sub.name for sub in catalog.clients.admin.list_subscriptions(target.entity)]
        siblings = sorted(name for name in names if name != target.subscription)
        if siblings:
            raise Unsupported(
                f"cannot redrive into Service Bus {target.describe()} alone: Service Bus sends "
                f"to the topic, which would also deliver to its other subscriptions "
                f"({', '.join(siblings)}). Redrive with to= naming a queue that only this "
                "subscription's consumers read, or give the other subscriptions a rule that "
                "excludes messages with the redrive_original_id property "
                "(docs/providers/azure-servicebus.md, Operations)"
            )

    def close(self) -> None:
        self._peekers.close()
        with self._lock:
            catalogs = list(self._catalogs.values())
            catalogs += [borrowed.catalog for borrowed in self._borrowed.values()]
            self._catalogs.clear()
            self._borrowed.clear()
        for catalog in catalogs:
            catalog.clients.close()


class _Borrowed:
    """A catalog on the user's SDK objects and how many drivers or calls use it."""

    def __init__(self, catalog: EntityCatalog) -> None:
        self.catalog = catalog
        self.users = 0


def _nothing() -> None:
    """Giving back a catalog on URL credentials: it stays for the provider's life."""


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """``action``, run at most once however often the result is called (a driver may be
    closed twice; a catalog must be given back once)."""
    done = threading.Lock()

    def run() -> None:
        if done.acquire(blocking=False):
            action()

    return run


_PROVIDER = ServiceBusProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
