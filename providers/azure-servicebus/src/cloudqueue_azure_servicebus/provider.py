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

import threading
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
        # Keyed by the sdk object's identity too: two users' clients never share a catalog.
        # The catalog holds the sdk object, so its id is not reused while the entry lives.
        self._catalogs: dict[tuple[Credentials, int | None], EntityCatalog] = {}
        self._peekers = Peekers()

    def _resolve(self, url: Url) -> tuple[EntityCatalog, Target]:
        target = target_of(url)
        credentials = credentials_for(url)
        sdk = url.sdk
        if sdk is not None and not isinstance(sdk, ServiceBusSdk):  # the core checks this first
            raise InvalidArgument(f"sdk= must be cloudqueue_azure_servicebus.ServiceBusSdk, not {type(sdk)}")
        key = (credentials, None if sdk is None else id(sdk))
        with self._lock:
            catalog = self._catalogs.get(key)
            if catalog is None:
                catalog = self._catalogs[key] = EntityCatalog(NamespaceClients(credentials, sdk))
        return catalog, target

    def open_topic(self, url: Url) -> TopicDriver:
        catalog, target = self._resolve(url)
        if target.subscription is not None or target.dead_letter:
            raise InvalidArgument(f"a producer sends to a queue or topic, not to a subscription: {url}")
        return ServiceBusTopic(catalog, target)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        catalog, target = self._resolve(url)
        return ServiceBusSubscription(catalog, target)

    def capabilities(self, url: Url) -> Capabilities:
        catalog, target = self._resolve(url)
        return capabilities_for(target, catalog.info(target))

    def declare(self, url: Url, declaration: Declaration) -> None:
        catalog, target = self._resolve(url)
        catalog.declare(target, declaration)

    def dead_letter_url(self, url: Url) -> Url:
        target_of(url)  # validates
        return url.with_params(subqueue="deadletter")

    def purge(self, url: Url) -> None:
        catalog, target = self._resolve(url)
        catalog.purge(target, lambda t, **options: open_receiver(catalog, t, **options))

    def delete(self, url: Url) -> None:
        catalog, target = self._resolve(url)
        if target.dead_letter:
            raise InvalidArgument("a $deadletterqueue goes away with its entity; delete the entity")
        catalog.delete(target)

    # -- operations (see _operations.py) ------------------------------------------

    def stats(self, url: Url) -> QueueStats:
        catalog, target = self._resolve(url)
        return stats(catalog, target, self._peekers)

    def peek(self, url: Url, max_messages: int) -> list[Delivery]:
        catalog, target = self._resolve(url)
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
        catalog, target = self._resolve(url)
        if target.subscription is None:
            return self.open_topic(url)
        if target.dead_letter:
            raise InvalidArgument(f"a $deadletterqueue takes no sends: {url}")
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
        return ServiceBusTopic(catalog, replace(target, subscription=None))

    def close(self) -> None:
        self._peekers.close()
        with self._lock:
            catalogs = list(self._catalogs.values())
            self._catalogs.clear()
        for catalog in catalogs:
            catalog.clients.close()


_PROVIDER = ServiceBusProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
