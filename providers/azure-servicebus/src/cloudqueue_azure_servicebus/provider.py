"""The Azure Service Bus provider: ``azuresb://<namespace>/<queue-or-topic>[?subscription=<name>]``.

Credentials: the ``connection_string`` URL parameter (secret: never shown), else
``AZURE_SERVICEBUS_CONNECTION_STRING``, else ``DefaultAzureCredential`` for
``<namespace>.servicebus.windows.net`` (or the namespace as given when it has a dot).
Emulator connection strings (``UseDevelopmentEmulator=true``) work, including the
local broker of :mod:`cloudqueue_azure_servicebus.testing`.

Async twins: the driver methods run the synchronous SDK in worker threads (the
interface's defaults). ``azure.servicebus.aio`` was not adopted: it has not been
measured to beat worker threads here, and the portable layer already overlaps
pulls, sends and settlements, so the threads are rarely the bottleneck.
"""

from __future__ import annotations

import threading

from cloudqueue.driver import Capabilities, Declaration, Provider, SubscriptionDriver, TopicDriver, Url
from cloudqueue.errors import InvalidArgument
from cloudqueue.hookspecs import hookimpl

from ._admin import EntityCatalog, capabilities_for
from ._clients import NamespaceClients
from ._names import PARAMETERS, SECRET_PARAMETERS, Credentials, Target, credentials_for, target_of
from ._receiving import ServiceBusSubscription, open_receiver
from ._sending import ServiceBusTopic

__all__ = ["ServiceBusProvider", "cloudqueue_providers"]


class ServiceBusProvider(Provider):
    schemes = ("azuresb",)
    distribution = "cloudqueue-azure-servicebus"
    parameters = PARAMETERS
    secret_parameters = SECRET_PARAMETERS
    supports_filters = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[Credentials, EntityCatalog] = {}

    def _resolve(self, url: Url) -> tuple[EntityCatalog, Target]:
        target = target_of(url)
        credentials = credentials_for(url)
        with self._lock:
            catalog = self._catalogs.get(credentials)
            if catalog is None:
                catalog = self._catalogs[credentials] = EntityCatalog(NamespaceClients(credentials))
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

    def close(self) -> None:
        with self._lock:
            catalogs = list(self._catalogs.values())
            self._catalogs.clear()
        for catalog in catalogs:
            catalog.clients.close()


_PROVIDER = ServiceBusProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
