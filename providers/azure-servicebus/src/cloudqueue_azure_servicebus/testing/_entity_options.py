"""Which entity options the broker honours, stores, ignores or refuses, and their limits.

Every element of ``QueueDescription``, ``TopicDescription`` and ``SubscriptionDescription`` that
``azure-servicebus`` 7.x sends (``management/_generated/models``) falls in one group:

* honoured (``_atom._FIELDS``): lock duration, max delivery count, sessions, duplicate detection
  and its window, default TTL, dead-lettering on expiry, max message size, forward_to,
  forward_dead_lettered_messages_to, auto_delete_on_idle;
* stored and reported only, because they change nothing a client can observe locally:
  max_size_in_megabytes (the quota is not enforced), enable_batched_operations, user_metadata,
  dead_lettering_on_filter_evaluation_exceptions, support_ordering;
* read-only runtime values the SDK echoes back on update, ignored: size, counts, times,
  availability status, subscription and filter counts;
* refused with HTTP 400 naming the SDK keyword when asked for something other than the default,
  because the broker does not implement them: ``REFUSED`` below.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

__all__ = ["REFUSED", "OptionError", "check_description", "check_values"]

SB_NS = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"

# element -> (SDK keyword, the value text the broker accepts, why the rest is refused)
REFUSED: dict[str, tuple[str, str, str]] = {
    "EnablePartitioning": ("enable_partitioning", "false", "partitioned entities are not implemented"),
    "EnableSubscriptionPartitioning": (
        "enable_subscription_partitioning", "false", "partitioned subscriptions are not implemented"
    ),
    "EnableExpress": ("enable_express", "false", "express entities are not implemented"),
    "FilteringMessagesBeforePublishing": (
        "filtering_messages_before_publishing", "false", "publish-time filtering is not implemented"
    ),
    "IsAnonymousAccessible": ("is_anonymous_accessible", "false", "anonymous access is not implemented"),
    "Status": ("status", "active", "disabling an entity (send/receive disabled) is not implemented"),
}

# The service's limits, checked on the values parsed from a request (seconds where durations).
MAX_LOCK_DURATION = 300.0
MIN_AUTO_DELETE_ON_IDLE = 300.0
MAX_USER_METADATA = 1024
MIN_DUPLICATE_WINDOW = 20.0
MAX_DUPLICATE_WINDOW = 7 * 86400.0


class OptionError(ValueError):
    """An option the broker refuses, or a value outside the service's limits (HTTP 400)."""


def check_description(description: ElementTree.Element) -> None:
    """Refuse non-default values of options the broker does not implement."""
    for child in description:
        local = child.tag.split("}", 1)[-1]
        if local == "AuthorizationRules" and len(child):
            raise OptionError(
                "authorization_rules: per-entity SAS rules are not supported by the local broker "
                "(it accepts any SAS token); leave authorization_rules empty."
            )
        refused = REFUSED.get(local)
        if refused is None or child.text is None:
            continue
        keyword, accepted, why = refused
        if child.text.strip().lower() != accepted:
            raise OptionError(
                f"{keyword}={child.text.strip()} is not supported by the local broker: {why}. "
                f"Leave {keyword} at its default ({accepted})."
            )


def check_values(values: dict[str, Any]) -> None:
    """Check parsed option values against the service's documented limits."""
    lock = values.get("lock_duration")
    if lock is not None and lock > MAX_LOCK_DURATION:
        raise OptionError(f"lock_duration is {lock:g} s; the maximum is {MAX_LOCK_DURATION:g} s (5 minutes).")
    idle = values.get("auto_delete_on_idle")
    if idle is not None and idle < MIN_AUTO_DELETE_ON_IDLE:
        raise OptionError(
            f"auto_delete_on_idle is {idle:g} s; the minimum is {MIN_AUTO_DELETE_ON_IDLE:g} s (5 minutes)."
        )
    count = values.get("max_delivery_count")
    if count is not None and count < 1:
        raise OptionError(f"max_delivery_count is {count}; the minimum is 1.")
    metadata = values.get("user_metadata")
    if metadata is not None and len(metadata) > MAX_USER_METADATA:
        raise OptionError(
            f"user_metadata is {len(metadata)} characters long; the limit is {MAX_USER_METADATA}."
        )
    window = values.get("duplicate_detection_history_time_window")
    if window is not None and not MIN_DUPLICATE_WINDOW <= window <= MAX_DUPLICATE_WINDOW:
        raise OptionError(
            f"duplicate_detection_history_time_window is {window:g} s; it must be between "
            f"{MIN_DUPLICATE_WINDOW:g} s and {MAX_DUPLICATE_WINDOW:g} s (7 days)."
        )
