"""The driver interface: what a provider plugin implements.

cloudqueue has three layers. The *portable layer* (``open_producer``,
``open_consumer``) validates, batches, coalesces, retries, prefetches, batches
acknowledgements and extends leases, once, for every provider. A *driver* only
translates one batch-shaped call into its SDK's call. A *provider* (found
through the ``cloudqueue.providers`` entry point group, see
:mod:`cloudqueue.hookspecs`) turns URLs into drivers and provisions destinations.

Contract for every driver method below:

- **Only translate.** Never retry, batch, hold back, reorder or renew on your own:
  the portable layer owns retries, batching, per-key ordering and lease renewal.
  Raise a :class:`~cloudqueue.QueueError`
  subclass whose ``retryable`` flag is true for transient failures; the portable
  layer retries with backoff. Calls receive at most the batch sizes declared in
  :class:`Limits`.
- **Translate errors through a table** of the SDK's *typed* errors
  (:func:`cloudqueue.errors.translate`), never by matching message text. Keep the
  native exception as ``__cause__``. Never catch ``BaseException``:
  cancellation must pass through untouched.
- **May be called concurrently** from several threads (sync API) or, for the
  ``a``-prefixed twins, from several tasks of one event loop.
- **Block for no longer than asked.** ``receive_batch`` returns within about
  ``wait`` seconds (plus one network round trip), possibly with nothing.
- **Never log or repr secrets** (keys, connection strings, tokens). Register
  them with :func:`cloudqueue.errors.register_secret` when you read them.

Async twins: every blocking method ``m`` has an ``am`` coroutine twin. The
defaults here run ``m`` in a worker thread, so a driver only has to write the
blocking version; drivers whose SDK has a native asyncio client, or whose calls
never block (in-process providers), override the twins.
"""

from __future__ import annotations

import abc
import asyncio
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ._message import Message
from ._sdk import SdkObjects, expect_type
from ._url import Url
from .errors import QueueError, Unsupported
from .filters import Filter
from .wire import (
    DEAD_LETTER_REASON,
    REDRIVE_ATTRIBUTES,
    REDRIVE_DELIVERY_COUNT,
    REDRIVE_ORIGINAL_ID,
    REDRIVE_REASON,
    REDRIVE_TIME,
)

__all__ = [
    "PUBSUB_CARRIER",
    "SERVICEBUS_CARRIER",
    "W3C_CARRIER",
    "BatchErrors",
    "Capabilities",
    "DeadLetterFacts",
    "Declaration",
    "Delivery",
    "Limits",
    "Message",
    "Provider",
    "QueueStats",
    "RedriveStamp",
    "SdkObjects",
    "SubscriptionDriver",
    "TopicDriver",
    "TraceCarrier",
    "Url",
    "expect_type",
]

T = TypeVar("T")

#: Per-entry outcome of a settlement call: ``None`` when every entry succeeded,
#: otherwise one ``QueueError`` or ``None`` per entry, in order.
BatchErrors = Sequence[QueueError | None] | None


@dataclass(frozen=True, slots=True)
class TraceCarrier:
    """Where a provider carries W3C trace context (``traceparent``, ``tracestate``)
    in message attributes, so that the SDKs' own instrumentation and cloudqueue
    continue each other's traces.

    The portable layer writes and reads these attributes; a driver only declares
    them (on :attr:`Limits.trace_carrier`). They are stripped from the attributes
    a consumer sees, always (telemetry on or off), and kept on
    :attr:`Delivery.trace_context`; a user attribute with one of these names is
    refused on send.
    """

    #: ``(w3c header, attribute name)`` pairs written on send; one header may be
    #: written under several names (Service Bus: ``Diagnostic-Id`` and ``traceparent``).
    inject: tuple[tuple[str, str], ...]
    #: ``(w3c header, attribute name)`` pairs read on receipt, in order of
    #: preference: the first attribute present gives the header its value.
    extract: tuple[tuple[str, str], ...]

    @property
    def attribute_names(self) -> frozenset[str]:
        """Every attribute name this carrier writes or reads."""
        return frozenset(name for _, name in self.inject) | frozenset(
            name for _, name in self.extract
        )


#: The W3C Trace Context names, as attributes of the same names: the default
#: (and what SQS uses, as the AWS SDKs' OpenTelemetry instrumentation does).
W3C_CARRIER = TraceCarrier(
    inject=(("traceparent", "traceparent"), ("tracestate", "tracestate")),
    extract=(("traceparent", "traceparent"), ("tracestate", "tracestate")),
)
#: Pub/Sub: the names google-cloud-pubsub's own OpenTelemetry tracing writes and reads.
PUBSUB_CARRIER = TraceCarrier(
    inject=(("traceparent", "googclient_traceparent"), ("tracestate", "googclient_tracestate")),
    extract=(("traceparent", "googclient_traceparent"), ("tracestate", "googclient_tracestate")),
)
#: Service Bus: azure-servicebus writes ``Diagnostic-Id`` and ``traceparent`` and reads
#: ``traceparent`` first. Public here so that code with no provider installed (the
#: serverless adapters) strips the same names as the drivers.
SERVICEBUS_CARRIER = TraceCarrier(
    inject=(
        ("traceparent", "Diagnostic-Id"), ("traceparent", "traceparent"),
        ("tracestate", "tracestate"),
    ),
    extract=(
        ("traceparent", "traceparent"), ("traceparent", "Diagnostic-Id"),
        ("tracestate", "tracestate"),
    ),
)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one destination accepts. The portable layer never exceeds these.

    Sizes are in bytes as measured by :meth:`TopicDriver.measure`; times in seconds.
    """

    max_message_bytes: int
    max_send_batch: int
    max_send_batch_bytes: int
    max_receive_batch: int
    max_settle_batch: int
    max_attributes: int
    max_attribute_name_bytes: int
    max_attribute_value_bytes: int
    #: Regular expression every attribute name must fully match, if any.
    attribute_name_pattern: str | None = None
    #: Attribute name prefixes reserved by the provider (or by the driver's own markers).
    reserved_attribute_prefixes: tuple[str, ...] = ()
    #: Longest send delay; None when delayed delivery is unsupported.
    max_delay: float | None = None
    #: Longest ``nack(delay=...)``; None when only an immediate nack is possible.
    max_nack_delay: float | None = None
    #: Longest lease one renewal (``SubscriptionDriver.extend``) can ask for.
    max_lease: float = 600.0
    #: Longest a lease can be kept after receipt, however often it is renewed
    #: (SQS: 12 hours); None when renewals can go on for ever.
    max_lease_total: float | None = None
    #: Longest wait one ``receive_batch`` call honours (long polling).
    max_receive_wait: float = 20.0
    #: Longest ordering key / deduplication id, in characters.
    max_key_length: int = 128
    #: Prefixes an ordering key or deduplication id may not start with: a driver that
    #: must make some up (SQS FIFO gives every message a group and a deduplication id)
    #: starts its own with one, so that a received message reports None for them.
    reserved_key_prefixes: tuple[str, ...] = ()
    #: The attributes that carry trace context (see :class:`TraceCarrier`). They
    #: count against ``max_attributes`` and the sizes; the portable layer sends a
    #: message without context when the user's attributes leave no room.
    trace_carrier: TraceCarrier = W3C_CARRIER


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do for one destination, and its limits.

    A feature marked False raises :class:`~cloudqueue.Unsupported` when asked for;
    the contract suite asserts exactly that.
    """

    limits: Limits
    #: ``Message.ordering_key`` is honoured: a key's messages are delivered in order.
    ordering: bool = False
    #: ``Message.deduplication_id`` drops repeats within the window.
    deduplication: bool = False
    #: ``Message.delay`` is honoured (up to ``limits.max_delay``).
    delayed_delivery: bool = False
    #: ``message.dead_letter(reason)`` and ``declare(dead_letter_after=N)`` work.
    dead_letter: bool = False
    #: ``message.delivery_attempt`` is known (not None).
    delivery_attempt: bool = True
    #: ``message.nack(delay=...)`` with a non-zero delay works.
    nack_delay: bool = True
    #: ``message.extend(seconds)`` works.
    lease_extension: bool = True
    #: Topics with several subscriptions, each receiving every message.
    fan_out: bool = False
    #: Destinations spring into existence on first use (memory, SQLite only).
    implicit_create: bool = False
    #: Messages survive a restart of the process / server.
    durable: bool = True
    #: Subscriptions take ``declare(url, filter=...)`` (see :mod:`cloudqueue.filters`);
    #: a provider that can express only some filters raises Unsupported naming the part.
    filters: bool = False

    def describe(self) -> dict[str, object]:
        """A plain dict for display (CLI, docs)."""
        flags: dict[str, object] = {
            name: getattr(self, name) for name in self.__slots__ if name != "limits"
        }
        limits = {name: getattr(self.limits, name) for name in self.limits.__slots__}
        limits["trace_carrier"] = sorted(self.limits.trace_carrier.attribute_names)
        flags["limits"] = limits
        return flags


@dataclass(frozen=True, slots=True)
class Declaration:
    """What ``cloudqueue.declare`` asks a provider to create (or update)."""

    #: Move a message to the dead-letter destination after this many deliveries.
    dead_letter_after: int | None = None
    #: Deliver messages of one ordering key in order.
    ordered: bool = False
    #: Drop messages whose deduplication id was seen within the provider's window.
    deduplicated: bool = False
    #: Lease (visibility timeout, lock duration, ack deadline), seconds.
    lease: float = 30.0
    #: Deliver to this subscription only the messages this filter matches; None: all.
    #: Only ever set for a URL naming a subscription, and only for providers with
    #: :attr:`Provider.supports_filters`. Translate it in one place (Pub/Sub: an
    #: expression; Service Bus: a rule), raise Unsupported naming a part the service
    #: cannot express, and when the service cannot change a subscription's filter,
    #: raise FailedPrecondition saying to delete and declare again. None on an
    #: existing subscription means "no filter": remove the one it has.
    filter: Filter | None = None


@dataclass(slots=True, eq=False)
class Delivery:
    """One received message as a driver hands it to the portable layer."""

    #: Opaque settlement handle (receipt handle, ack id, lock token...).
    token: object
    id: str
    body: bytes
    attributes: dict[str, str]
    #: 1 on first delivery; None only where the provider cannot know.
    delivery_attempt: int | None
    ordering_key: str | None = None
    enqueued_at: datetime.datetime | None = None
    #: ``time.monotonic()`` at which the lease the server granted ends, if known;
    #: measured from *before* the request, so that it is never later than the
    #: server's. The portable layer renews the lease before then while it keeps the
    #: message, and updates this with what each renewal returns.
    lease_deadline: float | None = None
    #: The SDK's own message object, for ``as_``.
    native: object = field(default=None, repr=False)
    #: W3C trace context headers (``traceparent``, ``tracestate``) the message
    #: carried, taken out of ``attributes`` by the portable layer (see
    #: :class:`TraceCarrier`); None when it carried none. Drivers leave it None.
    trace_context: dict[str, str] | None = None
    #: The deduplication id the sender gave with the message; None when it gave
    #: none or the provider cannot tell. Never an id the driver or SDK made up (an
    #: idempotency key must mean "the same logical message", which a made-up id
    #: does not).
    deduplication_id: str | None = None
    #: Set by the portable layer, never by drivers: why the offloaded payload this
    #: delivery points to could not be read (see :mod:`cloudqueue.offload`). Reading
    #: the received message's body then raises it.
    payload_error: QueueError | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How many messages one queue or subscription holds, as its provider reports them.

    A count is None where the provider cannot know it (docs/semantics.md says which);
    ``exact`` is False when the numbers are the service's approximations (SQS) or
    snapshots that may lag by seconds.
    """

    #: Waiting to be received now.
    available: int | None
    #: Received and not settled yet (leased, locked, outstanding).
    in_flight: int | None
    #: Sent with a delay (or scheduled) and not yet due.
    delayed: int | None
    #: In the dead-letter destination of this queue or subscription.
    dead_letters: int | None
    #: Seconds since the oldest message still held (available, in flight or delayed) was sent.
    oldest_age: float | None
    #: True when the counts are exact at the moment they were read.
    exact: bool
    #: Messages ever sent to (or routed into) this queue or subscription, since it was
    #: created or the provider began counting: the ``top`` view derives rates from it.
    total_sent: int | None = None
    #: Deliveries ever handed to consumers (a redelivery counts again), likewise.
    total_received: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterFacts:
    """What a dead letter says about how it got there, read by
    :meth:`Provider.dead_letter_facts` from a delivery of a dead-letter destination."""

    #: The user's attributes, with every dead-letter marker of the provider removed
    #: (the ``dead_letter_reason`` attribute, native dead-letter properties...): what a
    #: redrive sends back.
    attributes: dict[str, str]
    #: Why it was dead-lettered: the reason given to ``dead_letter(reason)``, or the
    #: service's own (Service Bus ``MaxDeliveryCountExceeded``); None when unknown.
    reason: str | None = None
    #: Deliveries at its source before it was dead-lettered; None when unknown.
    delivery_count: int | None = None
    #: The id it had at its source, when the provider knows it and it differs from the
    #: dead letter's own id (a copy sent to the dead-letter destination).
    original_id: str | None = None
    #: Where it was dead-lettered from, in the provider's own words (display only).
    source: str | None = None


#: Attributes a dead letter never carries back: its marker and earlier provenance.
_NOT_CARRIED_BACK = frozenset((DEAD_LETTER_REASON, *REDRIVE_ATTRIBUTES))


@dataclass(frozen=True, slots=True)
class RedriveStamp:
    """What ``cloudqueue.ops.redrive`` writes on each message it puts back: given to
    :meth:`SubscriptionDriver.move_dead_letters`, and used by the portable redrive too,
    so that a native move and a portable one leave the same attributes.

    A native move needs no checks of its own beyond :meth:`accepts`: the portable
    layer offers one only when the target has the limits of the dead-letter
    destination (whose messages met them when they were sent) and has checked the
    provenance attribute names against them once.
    """

    #: The ``redrive_time`` value (ISO 8601, UTC, milliseconds, ``Z``) of this batch.
    time: str
    #: The target's limits.
    limits: Limits
    #: The target honours ordering keys (a keyed message may go there).
    ordering: bool

    def attributes(
        self, attributes: Mapping[str, str], dead_letter_id: str, reason: str | None,
        delivery_count: int | None, original_id: str | None = None,
    ) -> dict[str, str]:
        """The attributes of the message put back for a dead letter: ``attributes``
        (the user's, as in :attr:`DeadLetterFacts.attributes`; the portable
        ``dead_letter_reason`` marker is dropped here too, so a native move may pass
        the stored attributes as they are) without any earlier provenance, plus this
        redrive's: the id at the source (``original_id``, else the dead letter's own
        id), the reason and the delivery count where known, the time."""
        stamped = dict(attributes)  # a copy at C speed, then the few names dropped
        if not _NOT_CARRIED_BACK.isdisjoint(stamped):
            for name in _NOT_CARRIED_BACK.intersection(stamped):
                del stamped[name]
        stamped[REDRIVE_ORIGINAL_ID] = original_id or dead_letter_id
        if reason is not None:
            stamped[REDRIVE_REASON] = reason
        if delivery_count is not None:
            stamped[REDRIVE_DELIVERY_COUNT] = str(delivery_count)
        stamped[REDRIVE_TIME] = self.time
        return stamped

    def accepts(self, body: bytes, attributes: Mapping[str, str], ordering_key: str | None) -> bool:
        """Whether the target surely takes a message of this body, stamped
        ``attributes`` and ordering key (sizes as the default :meth:`TopicDriver.measure`
        counts them). A native move leaves a dead letter it is False for where it is:
        the portable redrive then reports why the target refuses it. Only the
        provenance values are checked one by one: the user's met these limits when
        they were sent."""
        limits = self.limits
        if len(attributes) > limits.max_attributes:
            return False
        if ordering_key is not None and not self.ordering:
            return False
        # UTF-8 takes at most 4 bytes a character: a string that short needs no encoding.
        longest = limits.max_attribute_value_bytes
        for name in REDRIVE_ATTRIBUTES:
            value = attributes.get(name)
            if value is not None and len(value) * 4 > longest and len(value.encode()) > longest:
                return False
        names, values = "".join(attributes), "".join(attributes.values())
        room = limits.max_message_bytes - len(body)
        if (len(names) + len(values)) * 4 <= room:
            return True
        return len(names.encode()) + len(values.encode()) <= room


class _DriverBase:
    """What both kinds of driver have: ``as_`` for the SDK objects they hold, and the
    attributes that describe their destination to telemetry."""

    def native_objects(self) -> Iterable[object]:
        """The SDK objects behind this driver, offered to ``as_`` in order."""
        return ()

    def as_(self, native_type: type[T]) -> T | None:
        for obj in self.native_objects():
            if isinstance(obj, native_type):
                return obj
        return None

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        """OpenTelemetry attributes describing this destination on every span and
        metric: ``messaging.system`` and ``server.address`` (+ ``server.port``)
        where known, and per-system ones. What it returns overrides the portable
        layer's defaults, taken from the URL: the scheme as ``messaging.system``,
        the last part of host/path as ``messaging.destination.name`` and the
        ``subscription`` parameter as ``messaging.destination.subscription.name``.
        Called once per producer or consumer, only when telemetry is on."""
        return {}


class TopicDriver(_DriverBase, abc.ABC):
    """Sends to one destination (a queue or a topic)."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this destination supports. A producer reads it on every send, so it
        may change (for example after ``declare``)."""

    @abc.abstractmethod
    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        """Send ``messages`` (already validated against ``capabilities``) in one call.

        Return, in order, the provider's message id for each message sent or the
        :class:`QueueError` for each one that was not (partial failure). Raise
        instead when the whole call failed. Must not send a message twice unless
        the portable layer calls again.
        """

    def measure(self, message: Message) -> int:
        """The size of ``message`` as the provider counts it against its limits.

        The default counts the body plus every attribute name and value in
        UTF-8. Override when the wire form is bigger (encodings, markers).
        """
        size = len(message.body)
        for name, value in message.attributes.items():
            size += len(name.encode()) + len(value.encode())
        return size

    def close(self) -> None:  # optional hook with nothing to do by default
        """Release the SDK client. Called once; no other call follows."""

    async def asend_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        return await asyncio.to_thread(self.send_batch, messages)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


class SubscriptionDriver(_DriverBase, abc.ABC):
    """Receives from one queue or one subscription of a topic, and settles messages."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this queue or subscription supports. A consumer reads it once, when
        it is opened."""

    @abc.abstractmethod
    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        """Receive up to ``max_messages`` (at most ``limits.max_receive_batch``).

        Wait up to ``wait`` seconds (at most ``limits.max_receive_wait``) for the
        first message, then return what is there. Every delivery is leased to
        this consumer until settled or until its lease ends; set its
        ``lease_deadline`` to when the server's lease ends.

        On an ordered destination, return messages of one ordering key in order,
        and as the server gives them: several of one key in one batch is fine.
        Never hold a message back to sequence keys: the portable layer hands out
        one message per key at a time, parks the rest and gives them back (through
        :meth:`release`) when a key's earlier message is nacked or its lease lost.
        """

    @abc.abstractmethod
    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        """Settle these deliveries as done: they are never delivered again."""

    @abc.abstractmethod
    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        """Make each ``(token, delay)`` delivery available again after ``delay`` seconds.

        ``delay`` is 0 or within ``limits.max_nack_delay``. A nack counts as a
        failed delivery towards ``dead_letter_after``.
        """

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        """Give back deliveries the application never saw (prefetched, then the
        consumer closed): available again at once, and where the provider can
        tell, not counted as a failed delivery. The default nacks them."""
        return self.nack([(token, 0.0) for token in tokens])

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        """Renew each ``(token, seconds)`` lease once, asking it to end ``seconds``
        from now (at most ``limits.max_lease``).

        Return per entry the lease deadline the server actually granted
        (``time.monotonic()`` clock; a provider that renews by a fixed duration
        returns that) or the error. An entry whose lease is already gone (expired,
        settled, its connection lost) gets a non-retryable error, preferably
        :class:`~cloudqueue.errors.LeaseLost`: the portable layer then treats the
        message as lost. The portable layer calls this as often as the lease needs
        to be kept; a driver never renews by itself (no renewal threads).

        The default raises Unsupported: override it when the provider can extend
        leases (and set ``capabilities.lease_extension``).
        """
        raise Unsupported("this provider cannot extend leases")

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        """Move each ``(token, reason)`` delivery to the dead-letter destination now."""
        raise Unsupported("this provider has no dead-letter destination")

    def interrupt_receives(self) -> None:  # optional hook
        """Make ``receive_batch`` calls under way return soon, with what they have
        (an empty list is fine). Called from any thread when the consumer closes,
        before it waits for them; must not block. The default does nothing: a
        receive then ends within its ``wait``. Override it when the SDK lets a
        wait be cut short, so that ``close()`` is prompt."""

    def can_move_dead_letters(self, target: TopicDriver) -> bool:
        """Whether :meth:`move_dead_letters` can move this destination's dead letters
        to ``target`` in place (the same broker, the same database file...). The
        default: False, and ``cloudqueue.ops.redrive`` receives, sends and acks."""
        return False

    def move_dead_letters(
        self, target: TopicDriver, max_messages: int, stamp: RedriveStamp
    ) -> list[str | None]:
        """Optional native redrive, called only when :meth:`can_move_dead_letters`
        said True for ``target``: move up to ``max_messages`` dead letters of this
        dead-letter destination to ``target`` in one atomic step, oldest first.

        Take only dead letters a receive could take now (never one leased to a
        consumer; on an ordered destination, a key's in order and none of a key whose
        earlier message is leased). Each moved message is what the portable redrive
        would send: the same body and ordering key, attributes from
        :meth:`RedriveStamp.attributes` given what :meth:`Provider.dead_letter_facts`
        reads from it, a new id, no delay, counted as sent to ``target``; the dead
        letter is gone in the same step. Leave in place, untouched, every dead letter
        :meth:`RedriveStamp.accepts` is False for (or that you are unsure of): the
        portable redrive deals with those.

        Return the reason (:attr:`DeadLetterFacts.reason`) of each message moved, in
        order; an empty list when none was. The portable layer calls again until one
        call moves nothing, then receives what is left the portable way.
        """
        raise Unsupported("this provider cannot move dead letters in place")

    def close(self) -> None:  # optional hook with nothing to do by default
        """Release the SDK client. Unsettled deliveries may be given back here."""

    async def areceive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        return await asyncio.to_thread(self.receive_batch, max_messages, wait)

    async def aack(self, tokens: Sequence[object]) -> BatchErrors:
        return await asyncio.to_thread(self.ack, tokens)

    async def anack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return await asyncio.to_thread(self.nack, entries)

    async def arelease(self, tokens: Sequence[object]) -> BatchErrors:
        return await asyncio.to_thread(self.release, tokens)

    async def aextend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        return await asyncio.to_thread(self.extend, entries)

    async def adead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        return await asyncio.to_thread(self.dead_letter, entries)

    async def amove_dead_letters(
        self, target: TopicDriver, max_messages: int, stamp: RedriveStamp
    ) -> list[str | None]:
        return await asyncio.to_thread(self.move_dead_letters, target, max_messages, stamp)

    async def ainterrupt_receives(self) -> None:
        self.interrupt_receives()  # never blocks: no worker thread needed

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


class Provider(abc.ABC):
    """Turns URLs of some schemes into drivers, and provisions destinations.

    Returned by the :func:`cloudqueue.hookspecs.cloudqueue_providers` hook.
    Methods receive a :class:`Url` whose query parameters are already checked
    against :attr:`parameters`.
    """

    #: URL schemes this provider answers, e.g. ``("sqs",)``.
    schemes: tuple[str, ...]
    #: The distribution that installs it, shown by ``cloudqueue providers``.
    distribution: str = "cloudqueue"
    #: Query parameters its URLs accept; any other raises InvalidArgument.
    parameters: frozenset[str] = frozenset({"subscription"})
    #: Parameters holding secrets: never shown in reprs, logs or errors.
    secret_parameters: frozenset[str] = frozenset()
    #: ``declare`` honours :attr:`Declaration.filter`. Left False, the portable layer
    #: refuses every filter with Unsupported before calling the provider, so that a
    #: provider written before filters existed never drops one silently.
    supports_filters: bool = False
    #: Offloaded messages use the AWS extended clients' wire format when the store is
    #: S3 (``ExtendedPayloadSize`` + an S3 pointer body), and consumers read it, so
    #: that Java and Python extended clients interoperate. For SQS and SNS only.
    aws_extended_payloads: bool = False
    #: The :class:`SdkObjects` subclass this provider accepts as ``sdk=`` (the user's own
    #: sessions, credentials, clients); None: it takes none. The portable layer checks the
    #: type, then every method below and the drivers get it as :attr:`Url.sdk`. Objects in
    #: it are the user's: never close them; close what you build from them.
    sdk_type: type[SdkObjects] | None = None

    @abc.abstractmethod
    def open_topic(self, url: Url) -> TopicDriver:
        """A driver sending to the destination named by ``url``."""

    @abc.abstractmethod
    def open_subscription(self, url: Url) -> SubscriptionDriver:
        """A driver receiving from the queue, or topic subscription, named by ``url``."""

    @abc.abstractmethod
    def capabilities(self, url: Url) -> Capabilities:
        """What the destination named by ``url`` supports (may ask the server)."""

    @abc.abstractmethod
    def declare(self, url: Url, declaration: Declaration) -> None:
        """Create the destination (and its subscription, dead-letter destination
        and redrive settings) or bring an existing one to ``declaration``."""

    @abc.abstractmethod
    def dead_letter_url(self, url: Url) -> Url:
        """The URL a consumer opens to read the dead letters of ``url``."""

    @abc.abstractmethod
    def purge(self, url: Url) -> None:
        """Remove every message waiting in the queue or subscription."""

    @abc.abstractmethod
    def delete(self, url: Url) -> None:
        """Delete the destination (or only the subscription, when one is named)."""

    # -- operations (cloudqueue.ops): optional, each with a portable default ----------

    #: :meth:`peek` reads messages without leasing them. Left False, ``cloudqueue.ops.peek``
    #: receives and releases instead (which counts a delivery) and refuses ordered
    #: destinations, where holding a message would block its key.
    supports_peek: bool = False

    def stats(self, url: Url) -> QueueStats:
        """The counts of the queue or subscription named by ``url`` (see :class:`QueueStats`):
        None for what the service cannot tell, never a guess."""
        raise Unsupported(f"the {url.scheme}:// provider reports no queue statistics")

    def peek(self, url: Url, max_messages: int) -> list[Delivery]:
        """Up to ``max_messages`` (at most 1000) of the queue or subscription named by
        ``url``, oldest first, read without leasing them or counting a delivery.
        ``Delivery.token`` is None. Called only when :attr:`supports_peek` is True."""
        raise Unsupported(f"the {url.scheme}:// provider cannot peek")

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        """What ``delivery``, received from the dead-letter destination ``url``, says
        about its dead-lettering, and its attributes without the markers.

        The default reads the portable ``dead_letter_reason`` attribute (see
        :mod:`cloudqueue.wire`). Override it to read native metadata (delivery counts,
        reasons, source names) and to remove the provider's own dead-letter attributes.
        """
        attributes = dict(delivery.attributes)
        reason = attributes.pop(DEAD_LETTER_REASON, None)
        return DeadLetterFacts(attributes=attributes, reason=reason)

    def redrive_source(self, url: Url) -> Url:
        """The queue or subscription whose dead letters the dead-letter destination
        ``url`` holds: where ``cloudqueue.ops.redrive`` puts them back when not told
        otherwise. Raise InvalidArgument when ``url`` is not a dead-letter destination
        or serves several sources (the user then passes ``to=``)."""
        raise Unsupported(
            f"the {url.scheme}:// provider cannot tell where dead letters came from: "
            "pass to= naming the destination"
        )

    def open_redrive_target(self, url: Url) -> TopicDriver:
        """A driver that sends to the queue named by ``url``, or, when ``url`` names a
        subscription, to that one subscription *only*: a redrive of one subscription's
        dead letters must never reach its siblings.

        The default sends to queues and topics and refuses subscriptions. A provider
        that can reach one subscription (or knows that it is the topic's only one)
        overrides it; one that cannot raises Unsupported saying why and what to do.
        """
        if url.subscription is None:
            return self.open_topic(url)
        raise Unsupported(
            f"the {url.scheme}:// provider cannot send to one subscription of a topic; "
            "sending to the topic would reach every subscription. Redrive with to= naming "
            "a destination only this subscription's consumers read"
        )

    def close(self) -> None:  # noqa: B027  # optional hook with nothing to do by default
        """Release shared clients when the registry is torn down."""
