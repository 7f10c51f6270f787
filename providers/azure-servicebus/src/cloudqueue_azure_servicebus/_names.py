"""What an ``azuresb://`` URL names, and which credentials reach it.

``azuresb://<namespace>/<queue>``, ``azuresb://<namespace>/<topic>`` (producers) and
``azuresb://<namespace>/<topic>?subscription=<name>`` (consumers); ``subqueue=deadletter``
reads the entity's ``$deadletterqueue``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cloudqueue.driver import Url
from cloudqueue.errors import InvalidArgument, register_secret

__all__ = [
    "CA_FILE_ENV",
    "CONNECTION_STRING_ENV",
    "PARAMETERS",
    "SECRET_PARAMETERS",
    "Credentials",
    "Target",
    "credentials_for",
    "target_of",
]

CONNECTION_STRING_ENV = "AZURE_SERVICEBUS_CONNECTION_STRING"
#: A CA bundle for the administration client's HTTPS calls (the local broker's
#: self-signed certificate); ordinary namespaces need none.
CA_FILE_ENV = "AZURE_SERVICEBUS_ADMIN_CA_FILE"
SECRET_PARAMETERS = frozenset({"connection_string"})
PARAMETERS = frozenset({"subscription", "subqueue", "connection_string", "admin_ca_file"})
_DEAD_LETTER = "deadletter"


@dataclass(frozen=True, slots=True)
class Target:
    """One queue, topic, or topic subscription (or its dead-letter subqueue)."""

    namespace: str
    entity: str
    subscription: str | None = None
    dead_letter: bool = False

    def describe(self) -> str:
        text = f"{self.namespace}/{self.entity}"
        if self.subscription:
            text += f" subscription {self.subscription}"
        return text + (" ($deadletterqueue)" if self.dead_letter else "")


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to reach a namespace; hashable so clients can be shared per namespace.

    ``repr`` never shows the connection string.
    """

    fully_qualified_namespace: str
    connection_string: str | None = None
    ca_file: str | None = None

    def __repr__(self) -> str:
        how = "connection string" if self.connection_string else "DefaultAzureCredential"
        return f"Credentials({self.fully_qualified_namespace!r}, {how})"


def target_of(url: Url) -> Target:
    segments = url.path.strip("/").split("/") if url.path.strip("/") else []
    if not url.host or len(segments) != 1 or not segments[0]:
        raise InvalidArgument(
            f"Service Bus URLs name a namespace and one queue or topic: "
            f"azuresb://<namespace>/<queue-or-topic>[?subscription=<name>], not {url}"
        )
    subscription = url.subscription
    if subscription == "":
        raise InvalidArgument("the subscription parameter must not be empty")
    subqueue = url.param("subqueue")
    if subqueue is not None and subqueue.lower() != _DEAD_LETTER:
        raise InvalidArgument(
            f"URL parameter subqueue={subqueue!r} is not supported: the only subqueue is "
            f"{_DEAD_LETTER!r} (the entity's $deadletterqueue)"
        )
    return Target(url.host, segments[0], subscription, subqueue is not None)


def credentials_for(url: Url) -> Credentials:
    namespace = url.host
    fqns = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
    connection_string = url.param("connection_string") or os.environ.get(CONNECTION_STRING_ENV) or None
    if connection_string:
        register_secret(connection_string)
        for part in connection_string.split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() in ("sharedaccesskey", "sharedaccesssignature"):
                register_secret(value.strip())
    ca_file = url.param("admin_ca_file") or os.environ.get(CA_FILE_ENV) or None
    return Credentials(fqns, connection_string, ca_file)
