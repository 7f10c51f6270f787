"""SDK clients shared per namespace: one ``ServiceBusClient`` and one administration client.

Creating either makes no network call; connections open with the first sender,
receiver or HTTP request, so opening a driver never blocks.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.servicebus import ServiceBusClient
from azure.servicebus.management import ServiceBusAdministrationClient

from ._names import Credentials

__all__ = ["NamespaceClients"]


class NamespaceClients:
    """The clients for one set of credentials. ``repr`` shows no secret."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._lock = threading.Lock()
        self._client: ServiceBusClient | None = None
        self._admin: ServiceBusAdministrationClient | None = None
        self._token_credential: Any = None

    def __repr__(self) -> str:
        return f"NamespaceClients({self.credentials!r})"

    def _credential(self) -> Any:
        if self._token_credential is None:
            from azure.identity import DefaultAzureCredential

            self._token_credential = DefaultAzureCredential()
        return self._token_credential

    @property
    def client(self) -> ServiceBusClient:
        with self._lock:
            if self._client is None:
                creds = self.credentials
                # retry_total=0: the portable layer owns retries (drivers never retry).
                if creds.connection_string:
                    self._client = ServiceBusClient.from_connection_string(
                        creds.connection_string, retry_total=0
                    )
                else:
                    self._client = ServiceBusClient(
                        creds.fully_qualified_namespace, self._credential(), retry_total=0
                    )
            return self._client

    @property
    def admin(self) -> ServiceBusAdministrationClient:
        with self._lock:
            if self._admin is None:
                creds = self.credentials
                extra: dict[str, Any] = {"retry_total": 0}
                if creds.ca_file:
                    extra["connection_verify"] = creds.ca_file
                if creds.connection_string:
                    self._admin = ServiceBusAdministrationClient.from_connection_string(
                        creds.connection_string, **extra
                    )
                else:
                    self._admin = ServiceBusAdministrationClient(
                        creds.fully_qualified_namespace, self._credential(), **extra
                    )
            return self._admin

    def close(self) -> None:
        with self._lock:
            client, admin = self._client, self._admin
            self._client = self._admin = None
        if client is not None:
            client.close()
        if admin is not None:
            admin.close()
