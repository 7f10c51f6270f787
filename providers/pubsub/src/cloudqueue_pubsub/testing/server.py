"""Start and stop the local Pub/Sub server."""

from __future__ import annotations

import ipaddress
from concurrent import futures
from types import TracebackType

import grpc

from ._auth import BearerTokenCheck
from ._service import PubSubService, RequestCounter
from ._state import DEFAULT_PUSH_BACKOFF, Broker

#: How long a Pull without return_immediately waits for a message before returning empty.
DEFAULT_PULL_WAIT_SECONDS = 2.0
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"PubSubServer host must be a loopback IP address or 'localhost', got {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"PubSubServer only listens on loopback addresses (it has no real authentication); "
            f"{host!r} is not one. Use 127.0.0.1 or ::1."
        )


class PubSubServer:
    """A local Google Cloud Pub/Sub server speaking the gRPC API on a loopback address.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with PubSubServer() as server:
            os.environ["PUBSUB_EMULATOR_HOST"] = server.address
            ...

    ``port=0`` picks a free port. ``pull_wait_seconds`` bounds how long a Pull without
    ``return_immediately`` waits for a message before returning an empty response.
    ``push_backoff`` is the (minimum, maximum) delay in seconds before a message whose push
    failed is pushed again, doubling per failed attempt, when the subscription has no retry
    policy; Google documents 100 ms to 60 s, and tests may shorten it.

    ``bearer_token`` makes every call require ``authorization: Bearer <bearer_token>``
    metadata (UNAUTHENTICATED otherwise), as Google's endpoint requires an OAuth token: a test
    can then prove that a credential object it passed is the one used. The server then listens
    with gRPC local credentials (loopback only, no TLS), which is what lets a client send call
    credentials to it: ``grpc.local_channel_credentials()`` on the client side. Clients without
    credentials (``PUBSUB_EMULATOR_HOST``) still connect, and are refused for want of a token.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        pull_wait_seconds: float = DEFAULT_PULL_WAIT_SECONDS,
        max_workers: int = 64,
        push_backoff: tuple[float, float] = DEFAULT_PUSH_BACKOFF,
        bearer_token: str | None = None,
    ) -> None:
        _check_loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self._host = host.strip("[]")
        self._requested_port = port
        self._port = 0
        self._pull_wait_seconds = pull_wait_seconds
        self._max_workers = max_workers
        low, high = push_backoff
        if not 0 <= low <= high:
            raise ValueError(
                "push_backoff must be (minimum, maximum) seconds with 0 <= minimum <= maximum, "
                f"got {push_backoff!r}"
            )
        self._push_backoff = push_backoff
        self._token_check = None if bearer_token is None else BearerTokenCheck(bearer_token)
        self._counter = RequestCounter()
        self._broker: Broker | None = None
        self._server: grpc.Server | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port listened on; known once the server has started."""
        if self._server is None:
            raise RuntimeError("PubSubServer is not running")
        return self._port

    @property
    def address(self) -> str:
        """``host:port``, suitable for PUBSUB_EMULATOR_HOST."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def broker(self) -> Broker:
        """The in-memory state, for assertions in tests (e.g. ``backlog(subscription)``)."""
        if self._broker is None:
            raise RuntimeError("PubSubServer is not running")
        return self._broker

    def request_counts(self) -> dict[str, int]:
        """Requests received per RPC method name, e.g. ``{"Publish": 10, "Pull": 12}``."""
        return self._counter.snapshot()

    def reset_counts(self) -> None:
        self._counter.reset()

    def start(self) -> PubSubServer:
        if self._server is not None:
            raise RuntimeError("PubSubServer is already running")
        broker = Broker(self._push_backoff)
        service = PubSubService(broker, self._counter, self._pull_wait_seconds)
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="pubsub-local"
            ),
            handlers=service.handlers(),
            interceptors=[] if self._token_check is None else [self._token_check],
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                # Refuse a second server on the same port instead of sharing it silently.
                ("grpc.so_reuseport", 0),
            ],
        )
        host = f"[{self._host}]" if ":" in self._host else self._host
        try:
            port = self._listen(server, f"{host}:{self._requested_port}")
        except RuntimeError as error:
            broker.close()
            raise OSError(f"Cannot listen on {host}:{self._requested_port}: {error}") from error
        if port == 0:
            broker.close()
            raise OSError(f"Cannot listen on {host}:{self._requested_port}")
        server.start()
        self._broker, self._server, self._port = broker, server, port
        return self

    def _listen(self, server: grpc.Server, address: str) -> int:
        if self._token_check is None:
            return int(server.add_insecure_port(address))
        # Local credentials: plain TCP on loopback, but a security level at which clients
        # agree to send their call credentials (the bearer token).
        local = grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        return int(server.add_secure_port(address, local))

    def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving; open streams and waiting pulls end. Safe to call twice."""
        server, broker = self._server, self._broker
        if server is None or broker is None:
            return
        # Wake blocked handlers first so that the grace period is not spent waiting on them.
        broker.close()
        server.stop(grace).wait()
        self._server = None
        self._broker = None

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        if self._server is None:
            return True
        return bool(self._server.wait_for_termination(timeout))

    def __enter__(self) -> PubSubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
