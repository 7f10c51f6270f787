"""The application object: handlers registered per source URL, and how to run them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .._sdk import SdkObjects
from .._secrets import hide_url_passwords
from ..codecs import codec_for_type
from ..codecs._base import describe
from ..errors import InvalidArgument, register_url_secrets, scrub
from ._breaker import CircuitBreaker
from ._counters import Counters, total
from ._handler import is_async_handler
from ._middleware import Middleware
from ._policy import FailurePolicy
from ._rate import RateLimit, rate_limit
from ._typed import binding_for

__all__ = ["App", "Publication", "Route"]

H = TypeVar("H", bound=Callable[..., Any])

#: Where a message's process span hangs (with OpenTelemetry on): under the span that
#: sent the message ("message", one trace from producer to handler), or in a trace of
#: its own with a link to it ("link", for long-lived or fan-out flows).
TraceParent = Literal["message", "link"]
TRACE_PARENTS = ("message", "link")


@dataclass(slots=True, eq=False)
class Route:
    """One source URL and the handler that processes its messages."""

    url: str
    handler: Callable[..., Any]
    is_async: bool
    #: Handlers running at once (async tasks, or threads of the route's pool).
    concurrency: int
    #: Messages held at once: running plus prefetched (the consumer's ``max_in_flight``).
    max_in_flight: int
    policy: FailurePolicy
    #: Leases of running messages are extended for up to this long (consumer option).
    max_lease_extension: float
    counters: Counters = field(default_factory=Counters)
    #: Parent of the process spans: the sender's span ("message") or a link ("link").
    trace_parent: TraceParent = "message"
    #: Handler starts per second (and burst) in this process; None: as fast as lanes go.
    rate: RateLimit | None = None
    #: When to stop receiving because the handler keeps failing; None: never.
    breaker: CircuitBreaker | None = None
    #: The user's own SDK objects the source's consumer is opened with (``sdk=``).
    sdk: SdkObjects | None = None
    #: The type the handler's payload is decoded into (its first parameter's annotation);
    #: None for a handler of raw messages. See :mod:`cloudqueue.codecs`.
    payload_type: object | None = None

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


@dataclass(frozen=True, slots=True, repr=False)
class Publication:
    """A destination the app sends to, declared with :meth:`App.publishes` (for the
    AsyncAPI document; nothing is opened)."""

    url: str
    #: The type of the values sent there (a pydantic model, msgspec Struct, dataclass...).
    kind: object
    description: str | None = None

    def __repr__(self) -> str:
        return (
            f"Publication({hide_url_passwords(scrub(self.url))!r}, {describe(self.kind)}, "
            f"description={self.description!r})"
        )


def _trace_parent(value: object) -> TraceParent:
    if value not in TRACE_PARENTS:
        raise InvalidArgument(f"trace_parent must be 'message' or 'link', not {value!r}")
    return value  # type: ignore[return-value]


def _positive_int(value: object, name: str) -> int:
    if type(value) is not int or value < 1:
        raise InvalidArgument(f"{name} must be a positive int, not {value!r}")
    return value


class App:
    """Handlers per source URL, run as a long-lived worker.

    ::

        app = cloudqueue.worker.App()

        @app.handler("sqlite:///orders.db?queue=orders", concurrency=8, max_attempts=3)
        def on_order(message: cloudqueue.ReceivedMessage) -> None:
            ship(json.loads(message.body))

    Run it with ``cloudqueue run module:app``, ``app.run()`` (blocking, handles
    SIGTERM/SIGINT) or ``await app.serve()``. A handler succeeds by returning (the
    message is acked) and fails by raising (retried with backoff, then dead-lettered:
    see :class:`FailurePolicy`); it may settle the message itself.

    Defaults given here apply to every handler; :meth:`handler` overrides them.
    """

    def __init__(
        self,
        *,
        middleware: Sequence[Middleware] = (),
        policy: FailurePolicy | None = None,
        concurrency: int = 8,
        max_in_flight: int | None = None,
        max_lease_extension: float = 1800.0,
        poll_wait: float = 1.0,
        trace_parent: TraceParent = "message",
    ) -> None:
        self.middleware = list(middleware)
        #: Parent of the process spans when OpenTelemetry is on (see :data:`TraceParent`).
        self.trace_parent = _trace_parent(trace_parent)
        self.policy = policy or FailurePolicy()
        self.concurrency = _positive_int(concurrency, "concurrency")
        self.max_in_flight = max_in_flight
        self.max_lease_extension = max_lease_extension
        #: Longest a receive call waits; bounds how long "stop pulling" takes.
        self.poll_wait = poll_wait
        self.routes: list[Route] = []
        #: What the app sends where, as declared with :meth:`publishes`.
        self.publications: list[Publication] = []
        self._runtime: Any = None  # the Runtime while serving
        #: True after a run whose shutdown was forced (second signal or ``stop(force=True)``).
        self.forced = False

    # -- registration --------------------------------------------------------------

    def handler(
        self,
        url: str,
        *,
        concurrency: int | None = None,
        max_in_flight: int | None = None,
        policy: FailurePolicy | None = None,
        max_attempts: int | None = None,
        dead_letter_on: tuple[type[BaseException], ...] | None = None,
        max_lease_extension: float | None = None,
        trace_parent: TraceParent | None = None,
        rate: str | RateLimit | None = None,
        burst: int | None = None,
        breaker: CircuitBreaker | None = None,
        sdk: SdkObjects | None = None,
    ) -> Callable[[H], H]:
        """Decorator: process messages from ``url`` with the decorated function.

        ``policy`` replaces the app's failure policy for this handler;
        ``max_attempts`` and ``dead_letter_on`` adjust one field of it;
        ``trace_parent`` replaces the app's. ``rate`` (``"200/s"``, ``"90/min"``)
        paces how often this process starts the handler, with up to ``burst`` at once
        (default: a tenth of a second's worth); ``breaker`` stops receiving while the
        handler keeps failing (see :class:`CircuitBreaker`). ``sdk``: your own SDK
        objects for this source, as for :func:`cloudqueue.open_consumer`.
        """

        def register(function: H) -> H:
            self.add_handler(
                url, function, concurrency=concurrency, max_in_flight=max_in_flight, policy=policy,
                max_attempts=max_attempts, dead_letter_on=dead_letter_on,
                max_lease_extension=max_lease_extension, trace_parent=trace_parent,
                rate=rate, burst=burst, breaker=breaker, sdk=sdk,
            )
            return function

        return register

    def add_handler(
        self,
        url: str,
        handler: Callable[..., Any],
        *,
        concurrency: int | None = None,
        max_in_flight: int | None = None,
        policy: FailurePolicy | None = None,
        max_attempts: int | None = None,
        dead_letter_on: tuple[type[BaseException], ...] | None = None,
        max_lease_extension: float | None = None,
        trace_parent: TraceParent | None = None,
        rate: str | RateLimit | None = None,
        burst: int | None = None,
        breaker: CircuitBreaker | None = None,
        sdk: SdkObjects | None = None,
    ) -> Route:
        """The non-decorator form of :meth:`handler`; returns the new route."""
        if not isinstance(url, str) or "://" not in url:
            raise InvalidArgument(f"a handler's source must be a queue URL, not {url!r}")
        if not callable(handler):
            raise InvalidArgument(f"handler must be callable, not {handler!r}")
        if any(route.url == url for route in self.routes):
            raise InvalidArgument("this source URL already has a handler; one handler per source")
        if self._runtime is not None:
            raise InvalidArgument("cannot add handlers while the app is running")
        if rate is None and burst is not None:
            raise InvalidArgument("burst needs a rate: pass rate='200/s' (for example) too")
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise InvalidArgument(f"breaker must be a cloudqueue.worker.CircuitBreaker, not {breaker!r}")
        if sdk is not None and not isinstance(sdk, SdkObjects):
            raise InvalidArgument(
                f"sdk must be a provider's SdkObjects (e.g. cloudqueue_sqs.SqsSdk), "
                f"not {type(sdk).__name__}"
            )
        limit = None if rate is None else rate_limit(rate, burst)
        chosen = policy or self.policy
        overrides: dict[str, Any] = {}
        if max_attempts is not None:
            overrides["max_attempts"] = max_attempts
        if dead_letter_on is not None:
            overrides["dead_letter_on"] = tuple(dead_letter_on)
        if overrides:
            chosen = dataclasses.replace(chosen, **overrides)
        slots = _positive_int(concurrency if concurrency is not None else self.concurrency, "concurrency")
        held = max_in_flight if max_in_flight is not None else self.max_in_flight
        held = _positive_int(held if held is not None else 2 * slots, "max_in_flight")
        if held < slots:
            raise InvalidArgument(
                f"max_in_flight ({held}) must be at least concurrency ({slots}): "
                "every running handler holds a message"
            )
        route = Route(
            url=url,
            handler=handler,
            is_async=is_async_handler(handler),
            concurrency=slots,
            max_in_flight=held,
            policy=chosen,
            max_lease_extension=(
                max_lease_extension if max_lease_extension is not None else self.max_lease_extension
            ),
            trace_parent=self.trace_parent if trace_parent is None else _trace_parent(trace_parent),
            rate=limit,
            breaker=breaker,
            sdk=sdk,
            # Read now, so a payload type without a codec fails at registration.
            payload_type=binding_for(handler).payload_type,
        )
        self.routes.append(route)
        return route

    def publishes(self, url: str, kind: type, *, description: str | None = None) -> None:
        """Declare that the app sends ``kind`` values to ``url``, for the AsyncAPI document
        (``cloudqueue asyncapi module:app``). Opens nothing; ``kind`` must have a codec."""
        if not isinstance(url, str) or "://" not in url:
            raise InvalidArgument(f"publishes() needs a queue or topic URL, not {type(url).__name__}")
        register_url_secrets(url)  # kept in a document's input: never in logs or errors
        if description is not None and not isinstance(description, str):
            raise InvalidArgument(f"description must be a str or None, not {type(description).__name__}")
        codec_for_type(kind)  # InvalidArgument naming the type when no codec carries it
        self.publications.append(Publication(url, kind, description))

    # -- running -------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Totals over every handler: processed, failed, retried, dead_lettered, skipped, in_flight."""
        return total([route.counters for route in self.routes])

    async def serve(self, *, grace: float = 30.0, handle_signals: bool = False) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``), then shut
        down: stop pulling, let running handlers finish within ``grace`` seconds, give
        back prefetched messages, flush settlements, close. Re-raises a fatal error of
        a source (e.g. its queue does not exist) after shutting the others down."""
        from ._runtime import Runtime  # the runtime pulls in threads and signals; load on use

        if self._runtime is not None:
            raise InvalidArgument("this app is already running")
        if not self.routes:
            raise InvalidArgument("the app has no handlers: register one with @app.handler(url)")
        runtime = Runtime(self, grace=grace)
        self._runtime = runtime
        try:
            await runtime.serve(handle_signals=handle_signals)
        finally:
            self._runtime = None

    def run(self, *, grace: float = 30.0, handle_signals: bool = True) -> bool:
        """Blocking :meth:`serve` in a new event loop; SIGTERM/SIGINT stop it gracefully
        and a second signal forces the stop. Returns True when the stop was forced
        (handler threads may still be running: exit the process with ``os._exit``)."""
        asyncio.run(self.serve(grace=grace, handle_signals=handle_signals))
        return self.forced

    def stop(self, *, force: bool = False) -> None:
        """Ask a running app to shut down; safe from any thread and from handlers.
        ``force`` skips the grace period and cancels running coroutine handlers."""
        runtime = self._runtime
        if runtime is not None:
            runtime.request_stop(force)

    @property
    def running(self) -> bool:
        return self._runtime is not None and self._runtime.serving
