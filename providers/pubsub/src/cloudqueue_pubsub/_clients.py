"""The official clients, created on first use and shared by every driver of one endpoint.

Creating a client looks up Application Default Credentials (which may probe the metadata
server), so it happens on the first call that needs the network, never when a driver is
opened. Drivers opened while ``PUBSUB_EMULATOR_HOST`` names a local server share clients
connected to that server; the others share clients for Google's endpoint.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from cloudqueue.errors import register_url_secrets
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

__all__ = ["ClientPool", "Clients"]

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


class Clients:
    """A publisher and a subscriber client for one endpoint, made when first asked for."""

    def __init__(self, emulator_host: str | None) -> None:
        self.emulator_host = emulator_host
        self._lock = threading.Lock()
        self._publisher: PublisherClient | None = None
        self._subscriber: SubscriberClient | None = None

    @property
    def publisher(self) -> PublisherClient:
        client = self._publisher or self._create(
            "_publisher", PublisherClient, PublisherGrpcTransport
        )
        assert isinstance(client, PublisherClient)
        return client

    @property
    def subscriber(self) -> SubscriberClient:
        client = self._subscriber or self._create(
            "_subscriber", SubscriberClient, SubscriberGrpcTransport
        )
        assert isinstance(client, SubscriberClient)
        return client

    def _create(self, slot: str, client_class: Any, transport: Any) -> object:
        with self._lock:  # one client per endpoint, even when first asked for concurrently
            client = getattr(self, slot)
            if client is None:
                client = client_class(**self._client_arguments(transport))
                setattr(self, slot, client)
            return client

    def _client_arguments(self, transport: Any) -> dict[str, Any]:
        if self.emulator_host is None:
            return {}  # Google's endpoint, Application Default Credentials
        # A local server speaks plain gRPC without credentials (what the client itself does
        # for PUBSUB_EMULATOR_HOST), on a channel with our options.
        channel = grpc.insecure_channel(self.emulator_host, options=_CHANNEL_OPTIONS)
        return {"transport": transport(channel=channel)}

    def created(self) -> list[object]:
        return [client for client in (self._publisher, self._subscriber) if client is not None]

    def close(self) -> None:
        with self._lock:
            for client in (self._publisher, self._subscriber):
                if client is not None:
                    client.transport.close()  # type: ignore[no-untyped-call]
            self._publisher = self._subscriber = None


class ClientPool:
    """One :class:`Clients` per endpoint, for the life of the provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: dict[str | None, Clients] = {}

    def get(self, emulator_host: str | None) -> Clients:
        if emulator_host:
            # A user:password@ in PUBSUB_EMULATOR_HOST ends up in gRPC's errors and logs.
            register_url_secrets("//" + emulator_host)
        with self._lock:
            clients = self._by_endpoint.get(emulator_host)
            if clients is None:
                clients = self._by_endpoint[emulator_host] = Clients(emulator_host)
            return clients

    def close(self) -> None:
        with self._lock:
            pooled = list(self._by_endpoint.values())
            self._by_endpoint.clear()
        for clients in pooled:
            clients.close()
