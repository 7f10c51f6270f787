"""What the memory and SQLite providers share for ``cloudqueue.ops``: reading a dead
letter's facts from its :class:`~._broker.DeadLetterOrigin`, finding the one source
of a dead-letter queue, and the peek size check."""

from __future__ import annotations

from collections.abc import Sequence

from ..driver import DeadLetterFacts, Delivery
from ..errors import InvalidArgument
from ..wire import DEAD_LETTER_REASON
from ._broker import DeadLetterOrigin, describe

__all__ = ["MAX_PEEK", "check_peek_size", "dead_letter_facts", "only_source"]

#: Most messages one ``peek`` returns (the driver interface's bound).
MAX_PEEK = 1000


def check_peek_size(max_messages: int) -> int:
    if not 1 <= max_messages <= MAX_PEEK:
        raise InvalidArgument(f"peek takes 1 to {MAX_PEEK} messages, not {max_messages}")
    return max_messages


def dead_letter_facts(delivery: Delivery) -> DeadLetterFacts:
    """The facts of a memory or SQLite dead letter: its :class:`DeadLetterOrigin`
    (absent for one moved before the origin was kept, or sent there by hand), and
    its attributes without ``dead_letter_reason``."""
    attributes = dict(delivery.attributes)
    given = attributes.pop(DEAD_LETTER_REASON, None)
    origin = delivery.native
    if not isinstance(origin, DeadLetterOrigin):
        return DeadLetterFacts(attributes=attributes, reason=given)
    return DeadLetterFacts(
        attributes=attributes,
        reason=origin.reason,
        delivery_count=origin.delivery_count,
        source=origin.describe(),
    )


def only_source(dead_letter_url: str, sources: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The one ``(topic, subscription)`` among ``sources`` whose dead letters a URL
    holds, or InvalidArgument saying why there is not exactly one."""
    if len(sources) == 1:
        return sources[0]
    if not sources:
        raise InvalidArgument(
            f"{dead_letter_url} is not a dead-letter queue: no queue or subscription sends "
            "its dead letters there (they go to <queue>-dlq, or <topic>-<subscription>-dlq); "
            "pass to= naming the destination"
        )
    named = ", ".join(describe(topic, sub) for topic, sub in sources)
    raise InvalidArgument(
        f"{dead_letter_url} holds the dead letters of several sources ({named}): "
        "pass to= naming the one to redrive to"
    )
