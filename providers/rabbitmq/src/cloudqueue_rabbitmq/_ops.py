"""What ``cloudqueue.ops`` needs beyond the defaults: where dead letters came from, how
to send one back to exactly one subscription, and what a dead letter says about itself.

A topic subscription is a queue (``<topic>.<subscription>``), so a redrive publishes to that
queue through the default exchange and never reaches the topic's other subscriptions.
Dead letters the broker moved (delivery limit reached) carry RabbitMQ's ``x-death`` header,
newest death first: its ``reason`` (``delivery_limit``, ``rejected``, ``expired``) and
``queue``. The newest, not ``x-first-death-*``: a delayed message's first death is its
expiry from a wait queue (:mod:`._delay`), not why it was dead-lettered.
"""

from __future__ import annotations

from cloudqueue.driver import DeadLetterFacts, Delivery, Url
from cloudqueue.errors import InvalidArgument
from cloudqueue.wire import DEAD_LETTER_REASON

from ._names import DEAD_LETTER_SUFFIX, Names, names_of

__all__ = ["dead_letter_facts", "direct", "redrive_source"]


def redrive_source(url: Url) -> Url:
    queue = names_of(url).queue
    if queue is None or not queue.endswith(DEAD_LETTER_SUFFIX):
        raise InvalidArgument(
            f"{url} is not a dead-letter queue (their names end {DEAD_LETTER_SUFFIX!r})"
        )
    return url.with_params(queue=queue[: -len(DEAD_LETTER_SUFFIX)], topic=None, subscription=None)


def direct(url: Url) -> Names:
    """The names of ``url`` with sends going straight to its queue (a subscription's
    queue for a topic URL), not through the topic's exchange."""
    names = names_of(url)
    return Names(names.broker, names.required_queue(), None, names.lease)


def _text(value: object) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _last_death(delivery: Delivery, field: str) -> str | None:
    headers = getattr(delivery.native, "headers", None) or {}
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return _text(deaths[0].get(field))
    return None


def dead_letter_facts(delivery: Delivery) -> DeadLetterFacts:
    attributes = dict(delivery.attributes)
    reason = attributes.pop(DEAD_LETTER_REASON, None) or _last_death(delivery, "reason")
    return DeadLetterFacts(
        attributes=attributes, reason=reason, source=_last_death(delivery, "queue")
    )
