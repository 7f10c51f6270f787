"""``ServiceBusBroker``: the public handle that starts and stops the local broker."""

from __future__ import annotations

import ipaddress
import threading
from types import TracebackType
from typing import Any

from ._auth import BrokerTokenCredential, TokenCheck
from ._entities import EntityProperties
from ._namespace import EntityExists, EntityMissing, Namespace
from ._server import SocketServer
from ._state import BrokerState

# The namespace's one shared access key. Unless the broker checks tokens any value works,
# but the SDK needs one to build tokens.
DEV_KEY = "SAS_KEY_VALUE"
DEV_KEY_NAME = "RootManageSharedAccessKey"
_LOCAL_NAMES = {"localhost"}

__all__ = ["EntityExists", "EntityMissing", "ServiceBusBroker"]


def _check_loopback(host: str) -> None:
    if host in _LOCAL_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"ServiceBusBroker only binds to loopback addresses, not {host!r}")


class ServiceBusBroker:
    """A local Azure Service Bus look-alike for tests (AMQP 1.0 + administration HTTP).

    Use as a context manager or with ``start()``/``stop()``; it serves from a daemon
    thread. ``connection_string`` is an emulator connection string the official SDK
    accepts, for both ``ServiceBusClient`` and ``ServiceBusAdministrationClient``.

    AMQP over WebSockets is served on the same port. The SDK leaves the Endpoint's port
    out of its WebSocket URL, so pass ``custom_endpoint_address`` too::

        ServiceBusClient.from_connection_string(
            broker.connection_string,
            transport_type=TransportType.AmqpOverWebsocket,
            custom_endpoint_address=broker.custom_endpoint_address,
        )

    That connects to ``ws://127.0.0.1:<port>/$servicebus/websocket`` (subprotocol
    ``AMQPWSB10``); the sync SDK needs ``websocket-client``, the async one ``aiohttp``.
    For ``wss://`` use a connection string without ``UseDevelopmentEmulator=true``
    (``Endpoint=sb://localhost;...``), ``custom_endpoint_address="sb://localhost:<port>"``
    and ``connection_verify=broker.certificate_path``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        idle_time_scale: float = 1.0,
        sku: str = "Standard",
        require_valid_tokens: bool = False,
    ) -> None:
        """``idle_time_scale`` multiplies every ``auto_delete_on_idle`` window, so a test can
        see the service's 5-minute minimum pass in seconds (0.01: 3 s). ``sku`` ("Standard"
        or "Premium") is what ``get_namespace_properties`` reports.

        ``require_valid_tokens`` makes the broker check every ``$cbs`` token and every
        administration request's ``Authorization`` header: shared access signatures must be
        signed with :attr:`shared_access_key` (key name :attr:`shared_access_key_name`),
        bearer tokens must come from :meth:`token_credential`. Off, anything is accepted."""
        _check_loopback(host)
        if not 0 < idle_time_scale <= 1:
            raise ValueError(f"idle_time_scale must be above 0 and at most 1, not {idle_time_scale!r}")
        if sku not in ("Standard", "Premium"):
            raise ValueError(f"sku must be 'Standard' or 'Premium', not {sku!r}")
        self.host = host
        self._requested_port = port
        self._tokens = TokenCheck({DEV_KEY_NAME: DEV_KEY})
        self._state = BrokerState(
            idle_time_scale=idle_time_scale, sku=sku, tokens=self._tokens if require_valid_tokens else None
        )
        self._server: SocketServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------

    def start(self) -> ServiceBusBroker:
        if self._server is not None:
            return self
        self._server = SocketServer(self._state, self.host, self._requested_port)
        self._thread = threading.Thread(
            target=self._server.serve, name=f"servicebus-broker-{self._server.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stop()
        thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServiceBusBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("broker is not started")
        return self._server.port

    @property
    def connection_string(self) -> str:
        # The SDK accepts emulator strings only for local hosts; it keeps the port and drops TLS.
        return (
            f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName={DEV_KEY_NAME};"
            f"SharedAccessKey={DEV_KEY};UseDevelopmentEmulator=true"
        )

    @property
    def fully_qualified_namespace(self) -> str:
        """``host:port``, for ``ServiceBusClient(fully_qualified_namespace, credential, use_tls=False)``
        and (with ``connection_verify=certificate_path``) ``ServiceBusAdministrationClient``."""
        return f"{self.host}:{self.port}"

    @property
    def shared_access_key_name(self) -> str:
        return DEV_KEY_NAME

    @property
    def shared_access_key(self) -> str:
        """The key that signs valid shared access signatures (for ``AzureNamedKeyCredential``)."""
        return DEV_KEY

    def token_credential(self) -> BrokerTokenCredential:
        """A ``TokenCredential`` issuing bearer tokens this broker accepts, in place of an
        azure-identity credential; it counts its ``get_token`` and ``close`` calls."""
        return BrokerTokenCredential(self._tokens)

    @property
    def custom_endpoint_address(self) -> str:
        """For the SDK's ``custom_endpoint_address``: where AMQP over WebSockets reaches this broker."""
        return f"sb://{self.host}:{self.port}"

    @property
    def certificate_path(self) -> str:
        """Self-signed certificate of the HTTPS administration surface (for ``connection_verify``)."""
        if self._server is None:
            raise RuntimeError("broker is not started")
        return self._server.tls.cert_path

    @property
    def open_connections(self) -> int:
        """Client sockets open now (AMQP, WebSocket, HTTP): how a test sees clients close."""
        if self._server is None:
            return 0
        with self._state.lock:
            return len(self._server.clients)

    def administration_client(self, **kwargs: Any) -> Any:
        """A ``ServiceBusAdministrationClient`` for this broker (trusts its certificate)."""
        from azure.servicebus.management import ServiceBusAdministrationClient

        kwargs.setdefault("connection_verify", self.certificate_path)
        return ServiceBusAdministrationClient.from_connection_string(self.connection_string, **kwargs)

    # ----- entities from code ------------------------------------------------------------

    def create_queue(self, name: str, **props: Any) -> None:
        """Create a queue; ``props`` are ``EntityProperties`` fields (seconds or timedelta)."""
        with self._state.lock:
            self._state.namespace.create_queue(name, _props(props))
        self._wake()

    def create_topic(self, name: str, **props: Any) -> None:
        with self._state.lock:
            self._state.namespace.create_topic(name, _props(props))
        self._wake()

    def create_subscription(self, topic_name: str, name: str, **props: Any) -> None:
        with self._state.lock:
            self._state.namespace.create_subscription(topic_name, name, _props(props))
        self._wake()

    def delete_queue(self, name: str) -> None:
        with self._state.lock:
            self._state.namespace.delete_queue(name)
        self._wake()

    def delete_topic(self, name: str) -> None:
        with self._state.lock:
            self._state.namespace.delete_topic(name)
        self._wake()

    def message_counts(self, path: str) -> dict[str, int]:
        """Counts for a queue or ``topic/Subscriptions/sub`` path (active, scheduled, dead_letter, total)."""
        with self._state.lock:
            return self._state.namespace.store(path).counts()

    def _wake(self) -> None:
        # A change made from another thread may have added a timer (auto-delete-on-idle) that
        # the loop, asleep on its select, would otherwise only see at the next I/O event.
        if self._server is not None:
            self._server.wake()

    @property
    def namespace(self) -> Namespace:
        """Direct access to state; hold no references across calls (the loop owns it)."""
        return self._state.namespace


def _props(values: dict[str, Any]) -> EntityProperties:
    props = EntityProperties()
    props.update(**values)
    return props

