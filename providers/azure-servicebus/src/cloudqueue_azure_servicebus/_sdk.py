"""``ServiceBusSdk``: the user's own credential and clients, passed as ``sdk=``.

Which object serves what:

* AMQP (send, receive, settle, peek, purge): ``client`` if given, else a
  ``ServiceBusClient`` built on ``credential``, else the URL's credentials.
* Administration (declare, delete, capabilities, stats): ``admin_client`` if given, else
  one built on ``credential``, else the URL's credentials.

A namespace on a loopback host (a local emulator or the test broker, ``azuresb://127.0.0.1:5672/q``)
is reached without TLS on AMQP, as the SDK itself does for emulator connection strings.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from azure.core.credentials import (
    AzureNamedKeyCredential,
    AzureSasCredential,
    SupportsTokenInfo,
    TokenCredential,
)
from azure.servicebus import ServiceBusClient
from azure.servicebus.management import ServiceBusAdministrationClient
from cloudqueue.driver import SdkObjects, expect_type
from cloudqueue.errors import InvalidArgument

__all__ = ["ServiceBusSdk"]

# TokenCredential and SupportsTokenInfo are runtime-checkable protocols: any object with
# get_token (or get_token_info) passes, as the SDK itself accepts.
_CREDENTIAL_CLASSES = (TokenCredential, SupportsTokenInfo, AzureNamedKeyCredential, AzureSasCredential)
_CREDENTIAL_TYPES = (
    "an azure.core.credentials.TokenCredential (any azure-identity credential), "
    "azure.core.credentials.AzureNamedKeyCredential or azure.core.credentials.AzureSasCredential"
)


@dataclass(frozen=True, repr=False)
class ServiceBusSdk(SdkObjects):
    """The user's own Service Bus objects; they are never closed by cloudqueue.

    ``credential`` builds the clients that are not given (cloudqueue closes those).
    The objects are synchronous SDK objects, also used by ``cloudqueue.aio``: its
    Service Bus drivers run the sync SDK in worker threads.
    """

    credential: TokenCredential | AzureNamedKeyCredential | AzureSasCredential | None = None
    client: ServiceBusClient | None = None
    admin_client: ServiceBusAdministrationClient | None = None

    def __post_init__(self) -> None:
        credential = self.credential
        if credential is not None and not isinstance(credential, _CREDENTIAL_CLASSES):
            raise InvalidArgument(
                f"ServiceBusSdk(credential=...) must be {_CREDENTIAL_TYPES}, not "
                f"{type(credential).__module__}.{type(credential).__qualname__}"
            )
        if inspect.iscoroutinefunction(getattr(credential, "get_token", None)):
            raise InvalidArgument(
                "ServiceBusSdk(credential=...) must be a synchronous credential "
                "(azure.identity, not azure.identity.aio): cloudqueue.aio runs the sync SDK "
                f"in worker threads; got {type(credential).__module__}.{type(credential).__qualname__}"
            )
        expect_type("ServiceBusSdk", "client", self.client, ServiceBusClient,
                    "azure.servicebus.ServiceBusClient (the synchronous client)")
        expect_type("ServiceBusSdk", "admin_client", self.admin_client, ServiceBusAdministrationClient,
                    "azure.servicebus.management.ServiceBusAdministrationClient (the synchronous client)")
        if credential is None and self.client is None and self.admin_client is None:
            raise InvalidArgument(
                "ServiceBusSdk() needs at least one of credential=, client= or admin_client="
            )
