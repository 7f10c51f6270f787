"""Opening producers and consumers, and managing destinations, by URL."""

from __future__ import annotations

from ._engine.retry import RetryPolicy
from ._registry import resolve
from ._sdk import SdkObjects
from ._sync import Consumer, Producer
from .codecs import Codec
from .driver import Capabilities, Declaration
from .errors import InvalidArgument, Unsupported
from .filters import Filter
from .offload import Offload

__all__ = [
    "capabilities",
    "dead_letter_url",
    "declare",
    "delete",
    "open_consumer",
    "open_producer",
    "purge",
]

#: Largest ``dead_letter_after``: Service Bus's MaxDeliveryCount is a 32-bit int, and no
#: provider counts further (SQS stops at 1000, Pub/Sub at 100).
_MAX_DELIVERIES = 2**31 - 1
#: ``lease`` stays below this many seconds (about 11.5 days; clouds allow far less).
_MAX_LEASE = 10**6


def open_producer(
    url: str,
    *,
    retry: RetryPolicy | None = None,
    max_concurrent_batches: int = 8,
    offload: Offload | None = None,
    sdk: SdkObjects | None = None,
    codec: Codec | None = None,
) -> Producer:
    """A :class:`Producer` sending to the queue or topic named by ``url``.

    ``retry`` governs retries of transient errors; ``max_concurrent_batches``
    bounds the send requests under way at once. ``offload``: send bodies above
    a threshold through a payload store (see :class:`cloudqueue.Offload`; the
    ``offload=`` URL parameters do the same, not both). ``sdk``: the provider's bundle
    of your own SDK objects (session, credential, client; e.g. ``cloudqueue_sqs.SqsSdk``),
    used instead of the ones cloudqueue would make, and never closed by it. ``codec``:
    encodes values sent that are not bytes, str or a Message (default: the codec each
    value's type chooses; see :mod:`cloudqueue.codecs`).
    """
    return Producer.open(url, retry, max_concurrent_batches, offload, sdk, codec)


def open_consumer(
    url: str,
    *,
    max_in_flight: int = 1000,
    settle_delay: float = 0.05,
    max_lease_extension: float = 1800.0,
    retry: RetryPolicy | None = None,
    offload: Offload | None = None,
    sdk: SdkObjects | None = None,
    codec: Codec | None = None,
) -> Consumer:
    """A :class:`Consumer` of the queue, or topic subscription, named by ``url``.

    At most ``max_in_flight`` messages are held (prefetched or handed out and
    not settled). Settlements wait up to ``settle_delay`` seconds to share a
    request. Leases of held messages are extended automatically for up to
    ``max_lease_extension`` seconds after receipt (0 disables it). ``offload``:
    fetch offloaded payloads from this location as messages are handed out (see
    :class:`cloudqueue.Offload`); only pointers inside it are fetched. ``sdk``: your own
    SDK objects, as for :func:`open_producer`. ``codec``: decodes ``message.decode(Type)``
    (default: the codec ``Type`` chooses; see :mod:`cloudqueue.codecs`).
    """
    return Consumer.open(
        url, max_in_flight, settle_delay, max_lease_extension, retry, offload, sdk, codec
    )


def declare(
    url: str,
    *,
    dead_letter_after: int | None = None,
    ordered: bool = False,
    deduplicated: bool = False,
    lease: float = 30.0,
    filter: Filter | None = None,  # the word users look for
    sdk: SdkObjects | None = None,
) -> None:
    """Create the destination named by ``url`` (and its subscription, when the
    URL names one), or bring an existing one to these settings.

    ``dead_letter_after``: after this many deliveries a message moves to the
    dead-letter destination (see :func:`dead_letter_url`). ``ordered``: deliver
    each ordering key's messages in order. ``deduplicated``: drop messages whose
    deduplication id was seen within the provider's window. ``lease``: seconds
    a received message stays invisible to other consumers. ``filter``: deliver to
    the subscription named by ``url`` only the messages it matches (see
    :mod:`cloudqueue.filters`); None delivers every message, and removes the filter
    an existing subscription has where the provider can change it. ``sdk``: your own
    SDK objects (see :func:`open_producer`), here and in every function below.
    """
    if dead_letter_after is not None and (
        type(dead_letter_after) is not int or not 1 <= dead_letter_after <= _MAX_DELIVERIES
    ):
        raise InvalidArgument(
            f"dead_letter_after must be None or an int from 1 to {_MAX_DELIVERIES}, "
            f"not {dead_letter_after!r:.60}"
        )
    for name, flag in (("ordered", ordered), ("deduplicated", deduplicated)):
        if type(flag) is not bool:
            raise InvalidArgument(f"{name} must be True or False, not {flag!r:.60}")
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0 < lease < _MAX_LEASE:
        raise InvalidArgument(
            f"lease must be a number of seconds above 0 and below {_MAX_LEASE}, not {lease!r:.60}"
        )
    if filter is not None and not isinstance(filter, Filter):
        raise InvalidArgument(
            f"filter must be None or a cloudqueue.filters.Filter (built with where()), "
            f"not {type(filter).__name__}"
        )
    provider, parsed = resolve(url, sdk)
    if filter is not None:
        if parsed.subscription is None:
            raise InvalidArgument(
                "a filter belongs to a topic subscription: name one in the URL "
                "(?subscription=<name>) to declare it with a filter"
            )
        if not provider.supports_filters:
            raise Unsupported(
                f"the {parsed.scheme}:// provider cannot filter subscriptions "
                "(its capabilities say filters=False)"
            )
    provider.declare(
        parsed,
        Declaration(
            dead_letter_after=dead_letter_after,
            ordered=ordered,
            deduplicated=deduplicated,
            lease=float(lease),
            filter=filter,
        ),
    )


def dead_letter_url(url: str, *, sdk: SdkObjects | None = None) -> str:
    """The URL to consume the dead letters of ``url`` from.

    Secrets in ``url`` are carried over, so the result can be opened directly;
    do not log it.
    """
    provider, parsed = resolve(url, sdk)
    return provider.dead_letter_url(parsed).unsafe_str()


def purge(url: str, *, sdk: SdkObjects | None = None) -> None:
    """Remove every message waiting in the queue or subscription named by ``url``."""
    provider, parsed = resolve(url, sdk)
    provider.purge(parsed)


def delete(url: str, *, sdk: SdkObjects | None = None) -> None:
    """Delete the destination (or only the subscription, when ``url`` names one)."""
    provider, parsed = resolve(url, sdk)
    provider.delete(parsed)


def capabilities(url: str, *, sdk: SdkObjects | None = None) -> Capabilities:
    """What the provider can do for the destination named by ``url``, and its limits."""
    provider, parsed = resolve(url, sdk)
    return provider.capabilities(parsed)
