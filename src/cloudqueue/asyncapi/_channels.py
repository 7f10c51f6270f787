"""What a queue URL tells AsyncAPI: the server, the channel address and the bindings.

AsyncAPI has bindings for SQS (0.2.0), SNS (0.1.0) and AMQP 0.9.1 (0.3.0); those are
filled in. Service Bus has no binding, and Google's Pub/Sub channel binding requires a
Pub/Sub *schema resource* (``schemaSettings``), which cloudqueue does not create: those
channels carry what the URL says in the ``x-cloudqueue`` extension only.

Secrets cannot leak: only the host, the path and the parameters in :data:`_SHOWN_PARAMETERS`
are read, never the user name, password or any other parameter (connection strings,
keys). An ``endpoint_url`` contributes only its host and port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from .._url import Url, parse_url

__all__ = ["Location", "Server", "locate"]

#: Parameters that name a destination or a region: never secrets.
_SHOWN_PARAMETERS = ("queue", "topic", "subscription", "region")
_SQS_BINDING = "0.2.0"
_SNS_BINDING = "0.1.0"
_AMQP_BINDING = "0.3.0"


@dataclass(frozen=True)
class Server:
    """An AsyncAPI Server Object, and a key to name it by."""

    key: str
    host: str
    protocol: str
    pathname: str | None = None
    protocol_version: str | None = None
    description: str | None = None

    def to_asyncapi(self) -> dict[str, Any]:
        server: dict[str, Any] = {"host": self.host, "protocol": self.protocol}
        if self.protocol_version:
            server["protocolVersion"] = self.protocol_version
        if self.pathname:
            server["pathname"] = self.pathname
        if self.description:
            server["description"] = self.description
        return server


@dataclass(frozen=True)
class Location:
    """Where a URL's messages are, as AsyncAPI describes it."""

    #: The URL without user info and without parameters other than names and the region.
    shown_url: str
    scheme: str
    #: The queue or topic name: the channel's address.
    address: str
    subscription: str | None
    server: Server
    channel_bindings: dict[str, Any] = field(default_factory=dict)
    #: Operation bindings of a handler receiving from this URL.
    receive_bindings: dict[str, Any] = field(default_factory=dict)
    #: What the URL says beyond the address, for the channel's ``x-cloudqueue``.
    details: dict[str, str] = field(default_factory=dict)


def locate(text: str) -> Location:
    """The location of the destination URL ``text``."""
    url = parse_url(text)
    describe = _BY_SCHEME.get(url.scheme, _generic)
    return describe(url)


def _shown_url(url: Url) -> str:
    shown = {name: url.params[name] for name in _SHOWN_PARAMETERS if name in url.params}
    query = f"?{urlencode(shown, safe='/:')}" if shown else ""
    return f"{url.scheme}://{url.host}{url.path}{query}"


def _server_key(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]+", "-", "-".join(part for part in parts if part)).strip("-")


def _location(url: Url, address: str, server: Server, **extra: Any) -> Location:
    details = {"provider": url.scheme, **extra.pop("details", {})}
    if url.subscription:
        details["subscription"] = url.subscription
    return Location(shown_url=_shown_url(url), scheme=url.scheme, address=address,
                    subscription=url.subscription, server=server, details=details, **extra)


def _aws_server(url: Url, service: str) -> Server:
    endpoint = url.param("endpoint_url")
    region = url.param("region")
    if endpoint:  # only its host and port: an endpoint URL may carry user info
        host = urlsplit(endpoint).netloc.rpartition("@")[2]
    else:
        host = f"{service}.{region}.amazonaws.com" if region else f"{service}.amazonaws.com"
    description = None if endpoint or region else (
        "The region comes from boto3's configuration (AWS_REGION, the profile); the host "
        f"is then {service}.<region>.amazonaws.com."
    )
    return Server(key=_server_key(service, region or "", host if endpoint else ""),
                  host=host, protocol=service, description=description)


def _sqs_queue(name: str) -> dict[str, Any]:
    return {"name": name, "fifoQueue": name.endswith(".fifo")}


def _sqs(url: Url) -> Location:
    queue = url.host
    return _location(url, queue, _aws_server(url, "sqs"), channel_bindings={
        "sqs": {"queue": _sqs_queue(queue), "bindingVersion": _SQS_BINDING}})


def _sns(url: Url) -> Location:
    topic = url.host
    channel = {"sns": {"name": topic, "ordering": {"type": "FIFO" if topic.endswith(".fifo") else "standard"},
                       "bindingVersion": _SNS_BINDING}}
    receive: dict[str, Any] = {}
    details: dict[str, str] = {}
    if url.subscription:
        # A subscription is an SQS queue named <topic>-<subscription>, subscribed with raw
        # delivery (cloudqueue_sqs._subscriptions).
        fifo = topic.endswith(".fifo")
        queue = f"{topic.removesuffix('.fifo')}-{url.subscription}{'.fifo' if fifo else ''}"
        details["queue"] = queue
        receive = {
            "sns": {
                "consumers": [{"protocol": "sqs", "endpoint": {"name": queue}, "rawMessageDelivery": True}],
                "bindingVersion": _SNS_BINDING,
            },
            "sqs": {"queues": [_sqs_queue(queue)], "bindingVersion": _SQS_BINDING},
        }
    return _location(url, topic, _aws_server(url, "sns"), channel_bindings=channel,
                     receive_bindings=receive, details=details)


def _pubsub(url: Url) -> Location:
    project, _, topic = f"{url.host}{url.path}".partition("/")
    server = Server(key=_server_key("pubsub", project), host="pubsub.googleapis.com",
                    protocol="googlepubsub", pathname=f"/projects/{project}")
    return _location(url, topic, server, details={"project": project})


def _servicebus(url: Url) -> Location:
    namespace = url.host
    host = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
    server = Server(key=_server_key("azuresb", namespace), host=host, protocol="amqps",
                    protocol_version="1.0", description="Azure Service Bus namespace")
    return _location(url, url.path.strip("/"), server)


def _amqp(url: Url) -> Location:
    # As RabbitMQ's URI spec: the path is the vhost, percent-encoded; empty means "/".
    named_vhost = unquote(url.path.removeprefix("/"))
    vhost = named_vhost or "/"
    server = Server(key=_server_key(url.scheme, url.host), host=url.host, protocol=url.scheme,
                    protocol_version="0.9.1", pathname=url.path if named_vhost else None)
    topic, queue = url.param("topic"), url.param("queue")
    details: dict[str, str] = {}
    if topic:
        # A topic is a fanout exchange; a subscription the queue <exchange>.<name> bound to it
        # (cloudqueue_rabbitmq._names). The binding allows an exchange or a queue, not both.
        binding: dict[str, Any] = {"is": "routingKey",
                                   "exchange": {"name": topic, "type": "fanout", "vhost": vhost}}
        if url.subscription:
            details["queue"] = f"{topic}.{url.subscription}"
        address = topic
    else:
        address = queue or ""
        binding = {"is": "queue", "queue": {"name": address, "vhost": vhost}}
    return _location(url, address, server, details=details,
                     channel_bindings={"amqp": {**binding, "bindingVersion": _AMQP_BINDING}})


def _memory(url: Url) -> Location:
    server = Server(key="memory", host="localhost", protocol="memory",
                    description="In-process queues of one Python process (cloudqueue memory://)")
    return _location(url, f"{url.host}{url.path}", server)


def _sqlite(url: Url) -> Location:
    database = url.path.removeprefix("/") or url.host
    server = Server(key=_server_key("sqlite", database), host="localhost", protocol="sqlite",
                    pathname=f"/{database}", description="A cloudqueue SQLite database file")
    return _location(url, url.param("queue") or "", server, details={"database": database})


def _generic(url: Url) -> Location:
    """A third-party provider's URL: the address is its host and path, no bindings."""
    server = Server(key=_server_key(url.scheme, url.host), host=url.host or "localhost", protocol=url.scheme)
    return _location(url, f"{url.host}{url.path}".strip("/"), server)


_BY_SCHEME = {
    "sqs": _sqs, "sns": _sns, "pubsub": _pubsub, "azuresb": _servicebus,
    "amqp": _amqp, "amqps": _amqp, "memory": _memory, "sqlite": _sqlite,
}
