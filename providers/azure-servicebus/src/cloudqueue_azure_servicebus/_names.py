"""What an ``azuresb://`` URL names, and which credentials reach it.

``azuresb://<namespace>/<queue>``, ``azuresb://<namespace>/<topic>`` (producers) and
``azuresb://<namespace>/<topic>?subscription=<name>`` (consumers); ``subqueue=deadletter``
reads the entity's ``$deadletterqueue``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

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

# Azure's naming rules: queue and topic names have 1-260 characters, subscription names
# 1-50; letters, digits, periods, hyphens and underscores, starting and ending with a
# letter or digit. (Queue and topic names may also hold "/" segments, which this URL
# form cannot carry.)
_ENTITY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,258}[A-Za-z0-9])?")
_SUBSCRIPTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?")
_NAME_RULE = "letters, digits, '.', '-' and '_', starting and ending with a letter or digit"
# A namespace name (letters, digits, hyphens; a letter first) or a host name, with a port.
_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,49}|[A-Za-z0-9.-]+\.[A-Za-z0-9-]+(?::[0-9]{1,5})?")


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
    if not _NAMESPACE.fullmatch(url.host):
        raise InvalidArgument(
            f"Service Bus namespace {url.host!r:.80} is neither a namespace name (letters, "
            "digits and hyphens, a letter first, at most 50) nor a host name"
        )
    entity = segments[0]
    if not _ENTITY_NAME.fullmatch(entity):
        raise InvalidArgument(
            f"Service Bus queue or topic name {entity!r:.80} ({len(entity)} characters) is not "
            f"valid: 1 to 260 {_NAME_RULE}"
        )
    if subscription is not None and not _SUBSCRIPTION_NAME.fullmatch(subscription):
        raise InvalidArgument(
            f"Service Bus subscription name {subscription!r:.80} ({len(subscription)} "
            f"characters) is not valid: 1 to 50 {_NAME_RULE}"
        )
    return Target(url.host, entity, subscription, subqueue is not None)


def credentials_for(url: Url) -> Credentials:
    namespace = url.host
    fqns = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
    for name in ("connection_string", "admin_ca_file"):
        if url.param(name) == "":
            raise InvalidArgument(f"the {name} parameter must not be empty")
    connection_string = url.param("connection_string") or os.environ.get(CONNECTION_STRING_ENV) or None
    if connection_string:
        register_secret(connection_string)
        for part in connection_string.split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() in ("sharedaccesskey", "sharedaccesssignature"):
                register_secret(value.strip())
        problem = _connection_string_problem(connection_string)
        if problem:
            source = (
                "the connection_string URL parameter" if url.param("connection_string")
                else CONNECTION_STRING_ENV
            )
            raise InvalidArgument(
                f"{source} is not a Service Bus connection string: {problem} (expected "
                "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<name>;"
                "SharedAccessKey=<key>, URL-encoded in a URL)"
            )
    ca_file = url.param("admin_ca_file") or os.environ.get(CA_FILE_ENV) or None
    if ca_file and not os.path.isfile(ca_file):
        source = "URL parameter admin_ca_file" if url.param("admin_ca_file") else CA_FILE_ENV
        raise InvalidArgument(f"{source}={ca_file!r:.200} is not a file")
    return Credentials(fqns, connection_string, ca_file)


def _connection_string_problem(text: str) -> str | None:
    """What the SDK would refuse in ``text`` (with a bare ``ValueError``), in words
    that never quote the string itself: it holds a key."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return "it is not valid text (it holds a lone surrogate)"
    settings: dict[str, str] = {}
    for part in text.strip().rstrip(";").split(";"):  # as the SDK splits it
        key, sep, value = part.partition("=")
        if not sep:
            return "every part between ';' must be NAME=VALUE"
        settings[key.lower()] = value
    endpoint = (settings.get("endpoint") or settings.get("hostname") or "").rstrip("/")
    if not endpoint:
        return "it has no Endpoint"
    try:
        host = urlsplit(endpoint).netloc
    except ValueError:
        host = ""
    if not host:
        return "its Endpoint is not a URL such as sb://<namespace>.servicebus.windows.net/"
    key_name, access_key = settings.get("sharedaccesskeyname"), settings.get("sharedaccesskey")
    signature = settings.get("sharedaccesssignature")
    if bool(key_name) != bool(access_key):
        return "it needs both SharedAccessKeyName and SharedAccessKey"
    if access_key and signature:
        return "it has both a SharedAccessKey and a SharedAccessSignature"
    if not access_key and not signature:
        return "it has neither a SharedAccessKey nor a SharedAccessSignature"
    return None
