"""Pub/Sub's limits, and what a topic or a subscription supports."""

from __future__ import annotations

from typing import Any

from cloudqueue.driver import Capabilities, Limits

from ._tracing import CARRIER

__all__ = ["LIMITS", "MARKER_PREFIX", "TOPIC_CAPABILITIES", "subscription_capabilities"]

#: Attribute names starting with this are reserved for cloudqueue's own markers.
MARKER_PREFIX = "cloudqueue."

#: One Publish request carries at most 10 MB; a little is kept for the request's own framing
#: (the topic name), so a message measured at the limit always fits in a request of its own.
_PUBLISH_REQUEST_BYTES = 10_000_000
_REQUEST_FRAMING_BYTES = 1_000

LIMITS = Limits(
    max_message_bytes=_PUBLISH_REQUEST_BYTES - _REQUEST_FRAMING_BYTES,
    max_send_batch=1000,
    max_send_batch_bytes=_PUBLISH_REQUEST_BYTES - _REQUEST_FRAMING_BYTES,
    max_receive_batch=1000,
    # Acknowledge/ModifyAckDeadline requests are capped near 512 KiB; real ack ids run to a
    # few hundred bytes, so 1,000 of them fit with room to spare.
    max_settle_batch=1000,
    max_attributes=100,
    max_attribute_name_bytes=256,
    max_attribute_value_bytes=1024,
    reserved_attribute_prefixes=("goog", MARKER_PREFIX),
    max_delay=None,  # Pub/Sub has no delayed publish
    max_nack_delay=600.0,  # ModifyAckDeadline accepts 0..600 s
    max_lease=600.0,
    # Kept short: the asyncio API runs Pull in a worker thread, which a cancelled receive
    # cannot interrupt, and asyncio.run() and close() wait for it. A longer wait is made of
    # several Pulls by the portable layer, which costs one request per 2 s when idle.
    max_receive_wait=2.0,
    # Ordering keys may be 1,024 bytes: 256 characters fit whatever their UTF-8 length.
    max_key_length=256,
    # googclient_traceparent / googclient_tracestate, the official client's names.
    trace_carrier=CARRIER,
)

#: A topic accepts ordering keys whatever its subscriptions do; subscriptions declared
#: ``ordered`` honour them. Fan-out is native: every subscription gets every message.
TOPIC_CAPABILITIES = Capabilities(
    limits=LIMITS,
    ordering=True,
    deduplication=False,
    delayed_delivery=False,
    dead_letter=False,
    delivery_attempt=False,
    nack_delay=True,
    lease_extension=True,
    fan_out=True,
    implicit_create=False,
    durable=True,
    filters=True,  # subscriptions take filter expressions (see _filter.py)
)


def subscription_capabilities(subscription: Any | None) -> Capabilities:
    """What a subscription supports, from its ``Subscription`` resource.

    ``None`` (not known yet) assumes a dead-letter policy, so nothing is refused that the
    subscription may allow; the driver still refuses a dead letter the subscription cannot
    take, per message.
    """
    has_policy = subscription is None or bool(subscription.dead_letter_policy.dead_letter_topic)
    ordered = subscription is not None and bool(subscription.enable_message_ordering)
    return Capabilities(
        limits=LIMITS,
        ordering=ordered,
        deduplication=False,
        delayed_delivery=False,
        dead_letter=has_policy,
        # Pub/Sub counts delivery attempts only for subscriptions with a dead-letter policy.
        delivery_attempt=has_policy,
        nack_delay=True,
        lease_extension=True,
        fan_out=True,
        implicit_create=False,
        durable=True,
        filters=True,
    )
