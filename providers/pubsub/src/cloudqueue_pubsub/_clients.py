"""The official clients: the user's own (``sdk=``), or made on first use and closed by us.

Creating a client looks up Application Default Credentials (which may probe the metadata
server), so it happens on the first call that needs the network, never when a driver is
opened. Without ``sdk=``, drivers opened while ``PUBSUB_EMULATOR_HOST`` names a local server
share clients connected to that server, and the others share clients for Google's endpoint,
for the life of the provider. With ``sdk=``, each driver (and each provisioning call) gets
its own :class:`Clients` and releases it when closed: no cache can then hand one user's
objects to another URL's drivers, and what we made is closed as soon as nobody needs it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc
from cloudqueue.errors import register_url_secrets
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from ._sdk import PubSubSdk

__all__ = ["ClientPool", "Clients", "publish"]

# Messages up to 10 MB travel both ways (the default receive cap is 4 MB). Reconnection backoff
# is kept short so that a client recovers within about a second of a network cut ending, instead
# of the gRPC default that grows towards two minutes.
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def publish(publisher: PublisherClient, request: Any, timeout: float) -> Any:
    """One Publish call through the generated client's method.

    ``google.cloud.pubsub_v1.PublisherClient`` (what users usually hold) subclasses the
    generated client but replaces ``publish`` with its batching one (topic, data, attributes);
    calling the generated method on it sends the request as is, through the user's channel.
    """
    return PublisherClient.publish(publisher, request=request, retry=None, timeout=timeout)


def _is_loopback(host: str) -> bool:
    name = urlsplit("//" + host).hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _OurChannel:
    """Mixed in before a generated gRPC transport: its channel, with our options, and a
    loopback endpoint without TLS.

    A loopback ``api_endpoint`` (a local server or proxy) gets gRPC local credentials:
    plain TCP, which never leaves the machine, at a security level where the call
    credentials (the user's token) are still sent. Any other endpoint keeps the TLS the
    transport would use.
    """

    @classmethod
    def create_channel(
        cls,
        host: str = "pubsub.googleapis.com",
        credentials: Credentials | None = None,
        credentials_file: str | None = None,
        scopes: Sequence[str] | None = None,
        quota_project_id: str | None = None,
        **kwargs: Any,
    ) -> grpc.Channel:
        kwargs.update(credentials=credentials, credentials_file=credentials_file,
                      scopes=scopes, quota_project_id=quota_project_id)
        kwargs["options"] = [*(kwargs.get("options") or ()), *_CHANNEL_OPTIONS]
        if kwargs.get("ssl_credentials") is None and _is_loopback(host):
            kwargs["ssl_credentials"] = grpc.local_channel_credentials(
                grpc.LocalConnectionType.LOCAL_TCP
            )
        transport: Any = super()  # the generated transport, next in the method order
        channel: grpc.Channel = transport.create_channel(host, **kwargs)
        return channel


class _PublisherTransport(_OurChannel, PublisherGrpcTransport):
    pass


class _SubscriberTransport(_OurChannel, SubscriberGrpcTransport):
    pass


class Clients:
    """A publisher and a subscriber client: the user's (``sdk``), or made when first asked
    for. :meth:`close` closes only those made here."""

    def __init__(
        self, emulator_host: str | None, sdk: PubSubSdk | None = None, *, pooled: bool = False
    ) -> None:
        self.emulator_host = emulator_host
        self._sdk = sdk
        self._pooled = pooled
        self._lock = threading.Lock()
        self._publisher: PublisherClient | None = sdk.publisher if sdk else None
        self._subscriber: SubscriberClient | None = sdk.subscriber if sdk else None
        self._made: list[PublisherClient | SubscriberClient] = []

    @property
    def endpoint(self) -> str | None:
        """``host:port`` of a non-default endpoint (for telemetry), None for Google's."""
        if self.emulator_host:
            return self.emulator_host
        for client in (self._publisher, self._subscriber):
            if client is not None:
                return str(client.api_endpoint)
        options = self._sdk.client_options if self._sdk else None
        endpoint = options.get("api_endpoint") if isinstance(options, dict) else getattr(
            options, "api_endpoint", None
        )
        return str(endpoint) if endpoint else None

    @property
    def publisher(self) -> PublisherClient:
        client = self._publisher or self._create("_publisher", PublisherClient)
        assert isinstance(client, PublisherClient)
        return client

    @property
    def subscriber(self) -> SubscriberClient:
        client = self._subscriber or self._create("_subscriber", SubscriberClient)
        assert isinstance(client, SubscriberClient)
        return client

    def _create(self, slot: str, client_class: Any) -> object:
        with self._lock:  # one client of each kind, even when first asked for concurrently
            client = getattr(self, slot)
            if client is None:
                client = client_class(**self._client_arguments(client_class))
                self._made.append(client)
                setattr(self, slot, client)
            return client

    def _client_arguments(self, client_class: Any) -> dict[str, Any]:
        publisher = client_class is PublisherClient
        if self.emulator_host is not None:
            # A local server speaks plain gRPC without credentials (what the client itself
            # does for PUBSUB_EMULATOR_HOST, ignoring credentials and client options too), on
            # a channel with our options.
            channel = grpc.insecure_channel(self.emulator_host, options=_CHANNEL_OPTIONS)
            transport = PublisherGrpcTransport if publisher else SubscriberGrpcTransport
            return {"transport": transport(channel=channel)}
        # Google's endpoint, or the user's: Application Default Credentials unless given.
        sdk = self._sdk
        return {
            "transport": _PublisherTransport if publisher else _SubscriberTransport,
            "credentials": sdk.credentials if sdk else None,
            "client_options": sdk.client_options if sdk else None,
        }

    def release(self) -> None:
        """Done with these clients: closes what was made here, unless the pool owns it."""
        if not self._pooled:
            self.close()

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
            for client in made:
                client.transport.close()  # type: ignore[no-untyped-call]
                if client is self._publisher:
                    self._publisher = None
                if client is self._subscriber:
                    self._subscriber = None


class ClientPool:
    """One shared :class:`Clients` per endpoint, for the life of the provider; a private
    one for every request that brings its own SDK objects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: dict[str | None, Clients] = {}

    def get(self, emulator_host: str | None, sdk: PubSubSdk | None = None) -> Clients:
        if emulator_host:
            # A user:password@ in PUBSUB_EMULATOR_HOST ends up in gRPC's errors and logs.
            register_url_secrets("//" + emulator_host)
        if sdk is not None:
            return Clients(emulator_host, sdk)
        with self._lock:
            clients = self._by_endpoint.get(emulator_host)
            if clients is None:
                clients = self._by_endpoint[emulator_host] = Clients(emulator_host, pooled=True)
            return clients

    def close(self) -> None:
        with self._lock:
            pooled = list(self._by_endpoint.values())
            self._by_endpoint.clear()
        for clients in pooled:
            clients.close()
