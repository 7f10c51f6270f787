"""SDK clients shared per namespace: one ``ServiceBusClient`` and one administration client.

Creating either makes no network call; connections open with the first sender,
receiver or HTTP request, so opening a driver never blocks.

With the user's :class:`ServiceBusSdk`, their ``client`` / ``admin_client`` are used as
they are and never closed here; clients built from their ``credential`` (or from the URL)
are this module's and are closed by :meth:`NamespaceClients.close`.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.servicebus import ServiceBusClient
from azure.servicebus.management import ServiceBusAdministrationClient
from cloudqueue.errors import register_secret

from ._names import Credentials
from ._sdk import ServiceBusSdk

__all__ = ["NamespaceClients"]


class NamespaceClients:
    """The clients for one set of credentials (and the user's SDK objects, if any).
    ``repr`` shows no secret."""

    def __init__(self, credentials: Credentials, sdk: ServiceBusSdk | None = None) -> None:
        self.credentials = credentials
        self.sdk = sdk
        self._lock = threading.Lock()
        self._client: ServiceBusClient | None = None
        self._admin: ServiceBusAdministrationClient | None = None
        self._token_credential: Any = None
        _register_credential_secrets(sdk)

    def __repr__(self) -> str:
        return f"NamespaceClients({self.credentials!r}, sdk={self.sdk!r})"

    def _credential(self) -> Any:
        if self.sdk is not None and self.sdk.credential is not None:
            return self.sdk.credential
        if self._token_credential is None:
            from azure.identity import DefaultAzureCredential

            self._token_credential = DefaultAzureCredential()
        return self._token_credential

    def _uses_url_connection_string(self) -> bool:
        # The user's credential outranks a connection string from the URL or environment.
        has_credential = self.sdk is not None and self.sdk.credential is not None
        return bool(self.credentials.connection_string) and not has_credential

    @property
    def client(self) -> ServiceBusClient:
        if self.sdk is not None and self.sdk.client is not None:
            return self.sdk.client
        with self._lock:
            if self._client is None:
                creds = self.credentials
                # retry_total=0: the portable layer owns retries (drivers never retry).
                if self._uses_url_connection_string():
                    assert creds.connection_string is not None
                    self._client = ServiceBusClient.from_connection_string(
                        creds.connection_string, retry_total=0
                    )
                else:
                    fqns = creds.fully_qualified_namespace
                    self._client = ServiceBusClient(
                        fqns, self._credential(), retry_total=0, use_tls=not _is_loopback(fqns)
                    )
            return self._client

    @property
    def admin(self) -> ServiceBusAdministrationClient:
        if self.sdk is not None and self.sdk.admin_client is not None:
            return self.sdk.admin_client
        with self._lock:
            if self._admin is None:
                creds = self.credentials
                extra: dict[str, Any] = {"retry_total": 0}
                if creds.ca_file:
                    extra["connection_verify"] = creds.ca_file
                if self._uses_url_connection_string():
                    assert creds.connection_string is not None
                    self._admin = ServiceBusAdministrationClient.from_connection_string(
                        creds.connection_string, **extra
                    )
                else:
                    self._admin = _admin_from_credential(
                        creds.fully_qualified_namespace, self._credential(), extra
                    )
            return self._admin

    def close(self) -> None:
        """Close the clients made here; the user's own objects stay open."""
        with self._lock:
            client, admin = self._client, self._admin
            self._client = self._admin = None
        if client is not None:
            client.close()
        if admin is not None:
            admin.close()


def _admin_from_credential(
    fqns: str, credential: Any, extra: dict[str, Any]
) -> ServiceBusAdministrationClient:
    """The administration client takes only a TokenCredential. A named key or a shared
    access signature goes through a connection string made here, the one public way
    the SDK signs HTTP requests with them; it holds the key at this moment, so a later
    ``AzureNamedKeyCredential.update`` reaches AMQP but not an already-built admin client."""
    if isinstance(credential, AzureNamedKeyCredential):
        name, key = credential.named_key
        register_secret(key)
        text = f"Endpoint=sb://{fqns}/;SharedAccessKeyName={name};SharedAccessKey={key}"
    elif isinstance(credential, AzureSasCredential):
        register_secret(credential.signature)
        text = f"Endpoint=sb://{fqns}/;SharedAccessSignature={credential.signature}"
    else:
        return ServiceBusAdministrationClient(fqns, credential, **extra)
    register_secret(text)
    return ServiceBusAdministrationClient.from_connection_string(text, **extra)


def _register_credential_secrets(sdk: ServiceBusSdk | None) -> None:
    """A named key or a signature the user hands over is blanked out of every message,
    as a connection string's key is (the SDK signs with them; an error may echo one)."""
    credential = None if sdk is None else sdk.credential
    if isinstance(credential, AzureNamedKeyCredential):
        register_secret(credential.named_key.key)
    elif isinstance(credential, AzureSasCredential):
        register_secret(credential.signature)


def _is_loopback(fqns: str) -> bool:
    host = fqns.rsplit(":", 1)[0] if fqns.count(":") == 1 else fqns
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
