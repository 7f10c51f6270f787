"""What a provider supplies to run the contract suite."""

from __future__ import annotations

import abc
import contextlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import cloudqueue

if TYPE_CHECKING:  # imported only for annotations: the suite stays cheap to import
    from ..faultproxy import FaultProxy

__all__ = ["DeclaringHarness", "Destination", "Harness", "eventually", "unique_name"]

T = TypeVar("T")
_counter = itertools.count(1)


def unique_name(prefix: str = "cq") -> str:
    """A destination name unlikely to clash across runs and processes."""
    return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10**8}-{next(_counter)}"


@dataclass(frozen=True)
class Destination:
    """A fresh destination made for one test."""

    #: Where producers send.
    producer_url: str
    #: Where consumers read (the queue, or the first subscription).
    consumer_url: str
    #: Further subscriptions of the same topic (fan-out), if asked for.
    other_subscriptions: tuple[str, ...] = ()
    #: Settings it was declared with.
    lease: float = 2.0
    dead_letter_after: int | None = None
    ordered: bool = False
    deduplicated: bool = False
    extra: dict[str, object] = field(default_factory=dict)


class Harness(abc.ABC):
    """Makes fresh destinations and states what the provider claims.

    Subclass it in your provider's tests and return it from the ``harness``
    fixture of a :class:`~cloudqueue.testing.contract.ContractSuite` subclass.
    The suite branches on the claims below: a claimed feature must work; an
    unclaimed one must raise :class:`cloudqueue.Unsupported`. Nothing is skipped.
    """

    #: Timers of some servers run late (LocalStack: up to ~1 s); waits allow this much.
    timer_slack: float = 0.5
    #: The shortest lease the provider accepts; tests of expiry use it.
    short_lease: float = 1.0

    # -- claims ------------------------------------------------------------------
    supports_ordering: bool = False
    supports_deduplication: bool = False
    supports_delayed_delivery: bool = False
    supports_dead_letter: bool = False
    supports_delivery_attempt: bool = True
    supports_nack_delay: bool = True
    supports_lease_extension: bool = True
    supports_fan_out: bool = False
    #: Subscriptions can filter (``capabilities.filters``); meaningful with fan-out. A
    #: provider with topics but no filters must refuse every filtered declare with
    #: Unsupported and keep delivering everything.
    supports_filters: bool = True
    #: Compared values (``equals``/``one_of`` values, ``startswith`` prefixes) the
    #: provider's filters cannot express: a filter comparing with one must raise
    #: Unsupported at declare, before it changes anything (SNS: the empty value, which
    #: it cannot tell from the placeholder cloudqueue sends for it).
    filter_unexpressible_values: frozenset[str] = frozenset()
    #: Largest body the suite sends to prove the size limit (defaults to the limit).
    max_body_for_tests: int | None = None
    #: ``dead_letter_after`` the dead-letter cases declare: the provider's minimum
    #: if it has one above 2 (Pub/Sub: 5).
    dead_letter_after_for_tests: int = 2
    #: The provider can declare dead-letter policies even though the destinations
    #: this harness makes have none (then ``supports_dead_letter`` is False but
    #: declaring one is not expected to raise Unsupported).
    provider_declares_dead_letters: bool = False

    # -- operations claims (cloudqueue.ops; the Operations cases) ---------------------
    #: The :class:`~cloudqueue.ops.QueueStats` count fields the provider knows (of
    #: ``available``, ``in_flight``, ``delayed``, ``dead_letters``, ``oldest_age``,
    #: ``total_sent``, ``total_received``). Left empty, ``ops.stats`` must raise
    #: Unsupported or report every field None with ``exact`` False.
    stats_fields: frozenset[str] = frozenset()
    #: The claimed counts are exact the moment they are read (else they must reach the
    #: true value eventually, as the service's approximations settle).
    stats_exact: bool = False
    #: The provider peeks natively (``Provider.supports_peek``): a peek counts no delivery,
    #: returns messages oldest first and works on ordered destinations.
    native_peek: bool = False
    #: A redrive can reach one subscription of a topic that has others; left False, such
    #: a redrive must raise Unsupported (it would reach the siblings).
    redrive_subscription: bool = False

    def process_env(self) -> dict[str, str]:
        """The environment for a separate Python process that must reach the same
        destinations (the redrive killed with SIGKILL). The default is this process's
        own; override it when clients find the server through something set in-process."""
        return dict(os.environ)

    # -- fault control (optional; used by ConnectionFaults) -------------------------
    #: A :class:`~cloudqueue.testing.faultproxy.FaultProxy` standing between the SDK
    #: and the provider's server, for providers that talk to a server over the
    #: network. When it is set, every destination :meth:`make` returns must be
    #: reached through it (its URLs name the proxy's port, or the SDK was pointed at
    #: the proxy before they were made), so that :meth:`cut_connections` cuts every
    #: connection producers and consumers of those destinations hold. None (the
    #: default): this harness cannot cut connections, unless it overrides
    #: :meth:`cut_connections` and :meth:`restore_connections`.
    fault_proxy: FaultProxy | None = None

    def cut_connections(self, seconds: float | None = None) -> None:
        """Cut every connection between clients and the server now, as a network
        failure would (reset, not closed cleanly), and refuse new ones for ``seconds``,
        or until :meth:`restore_connections` when ``seconds`` is None.

        The default works through :attr:`fault_proxy`; override both methods to cut
        another way (a firewall rule, stopping the server). Returns at once.
        """
        proxy = self._proxy_for_faults()
        if seconds is None:
            proxy.cut_now()
        else:
            proxy.cut(seconds)

    def restore_connections(self) -> None:
        """End the cut in force, if any: new connections reach the server again."""
        self._proxy_for_faults().restore()

    def _proxy_for_faults(self) -> FaultProxy:
        if self.fault_proxy is None:
            raise NotImplementedError(
                f"{type(self).__name__} cannot cut connections: set its `fault_proxy` to a "
                "FaultProxy that its destinations are reached through, or override "
                "cut_connections() and restore_connections()"
            )
        return self.fault_proxy

    @abc.abstractmethod
    def make(
        self,
        *,
        ordered: bool = False,
        deduplicated: bool = False,
        dead_letter_after: int | None = None,
        lease: float | None = None,
        subscriptions: int = 1,
    ) -> Destination:
        """Create and declare a fresh destination with these settings.

        ``subscriptions`` > 1 asks for a topic with that many subscriptions
        (only called when ``supports_fan_out``). ``lease`` None means
        :attr:`short_lease`. Ordered/deduplicated/dead-letter destinations are
        only asked for when claimed, except where a test checks that asking a
        plain destination for the feature raises Unsupported.
        """

    def missing_url(self) -> str:
        """A URL of the provider's scheme naming a destination that does not exist."""
        raise NotImplementedError

    def cleanup(self, destination: Destination) -> None:  # optional
        """Delete what :meth:`make` created (called after each test)."""
        with contextlib.suppress(cloudqueue.QueueError):
            cloudqueue.delete(destination.producer_url)


class DeclaringHarness(Harness):
    """A harness that makes destinations with :func:`cloudqueue.declare` alone.

    Enough for any provider whose ``declare`` creates everything a test needs:
    implement :meth:`url` to spell a destination (and subscription) URL.
    """

    #: Prefix of the unique destination names, to tell providers apart in logs.
    name_prefix = "cq"

    @abc.abstractmethod
    def url(self, name: str, subscription: str | None = None) -> str:
        """The URL of destination ``name``, or of its subscription ``subscription``."""

    def new_name(self) -> str:
        """A fresh destination name (override for naming rules, e.g. SQS's ``.fifo``)."""
        return unique_name(self.name_prefix)

    def make(
        self,
        *,
        ordered: bool = False,
        deduplicated: bool = False,
        dead_letter_after: int | None = None,
        lease: float | None = None,
        subscriptions: int = 1,
    ) -> Destination:
        name = self.new_name()
        lease = lease or self.short_lease
        consumer_urls = (
            [self.url(name)]
            if subscriptions == 1
            else [self.url(name, f"s{index}") for index in range(subscriptions)]
        )
        for url in consumer_urls:
            cloudqueue.declare(
                url, ordered=ordered, deduplicated=deduplicated,
                dead_letter_after=dead_letter_after, lease=lease,
            )
        return Destination(
            producer_url=self.url(name),
            consumer_url=consumer_urls[0],
            other_subscriptions=tuple(consumer_urls[1:]),
            lease=lease,
            dead_letter_after=dead_letter_after,
            ordered=ordered,
            deduplicated=deduplicated,
        )


def eventually(check: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f}s")
        time.sleep(interval)
