"""Delays without a delayed-message plugin: a ladder of wait queues whose message TTL
dead-letters back to where the message was going.

* Levels: powers of two from 1 s to :data:`MAX_DELAY` (2^16 s, about 18 h): 17 levels at
  most per destination, declared when first used. A delay is rounded *up* to the next
  level (0.3 s and 1 s wait 1 s, 5 s waits 8 s), so a message never comes back early and
  at worst waits twice as long as asked. Measured on the Debian broker (3.10.8): a message
  left its wait queue 3-95 ms after its TTL, never before. A chain of levels (5 = 4 + 1)
  would be more exact, but a wait queue dead-letters to one fixed routing key, so each hop
  would need a consumer to move the message on; rounding keeps the broker doing all of it.
* Wait queues are quorum queues like every other queue here: RabbitMQ 3.10 honours
  ``x-message-ttl`` on them, and only quorum queues dead-letter at least once
  (``x-dead-letter-strategy``): a classic queue's dead-lettering is at most once, and a
  delayed message lost on the way back is a message lost.
* Where an expired message goes: a queue's wait queues dead-letter through the default
  exchange to the queue (a subscription's queue for ``nack(delay)``, so that its sibling
  subscriptions never see it again); a topic's wait queues dead-letter to the topic's
  fanout exchange, so a delayed send reaches every subscription bound when it is due.
* Names live under ``cloudqueue.wait.`` (``cloudqueue.wait.q.<level>.<queue>``,
  ``cloudqueue.wait.t.<level>.<exchange>``), apart from subscription queues
  (``<exchange>.<name>``), which they could otherwise collide with; a name past AMQP's
  255 bytes ends in a digest of the destination's name instead.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from aio_pika.abc import FieldValue

from ._names import MAX_NAME_BYTES

__all__ = [
    "LEVELS",
    "MAX_DELAY",
    "WAIT_PREFIX",
    "Returning",
    "derived_name",
    "level_for",
    "wait_queue_arguments",
    "wait_queue_name",
]

#: Every wait queue's name starts with this.
WAIT_PREFIX = "cloudqueue.wait."
#: Wait levels in seconds: 1, 2, 4, ... 65536.
LEVELS: tuple[int, ...] = tuple(2**power for power in range(17))
#: The longest delay (send or nack): the top level.
MAX_DELAY = float(LEVELS[-1])


@dataclass(frozen=True, slots=True)
class Returning:
    """Where a wait queue's expired messages go: a queue, or a topic's exchange."""

    name: str
    is_topic: bool

    @property
    def exchange(self) -> str:
        return self.name if self.is_topic else ""


def level_for(delay: float) -> int:
    """The smallest level that is not shorter than ``delay`` (0 < delay <= MAX_DELAY)."""
    if not 0 < delay <= MAX_DELAY:
        raise ValueError(f"delay {delay} is outside 0 < delay <= {MAX_DELAY:g}")
    return max(1, int(2 ** math.ceil(math.log2(delay))))


def derived_name(prefix: str, name: str) -> str:
    """``prefix + name``, or ``prefix`` + a digest of ``name`` when that is too long."""
    full = prefix + name
    if len(full.encode()) <= MAX_NAME_BYTES:
        return full
    return prefix + "sha256-" + hashlib.sha256(name.encode()).hexdigest()


def wait_queue_name(to: Returning, level: int) -> str:
    kind = "t" if to.is_topic else "q"
    return derived_name(f"{WAIT_PREFIX}{kind}.{level}.", to.name)


def wait_queue_arguments(to: Returning, level: int) -> dict[str, FieldValue]:
    arguments: dict[str, FieldValue] = {
        "x-queue-type": "quorum",
        "x-message-ttl": level * 1000,
        "x-dead-letter-exchange": to.exchange,
        # At-least-once dead-lettering needs reject-publish; a wait queue has no length
        # limit, so nothing is ever refused for it.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if not to.is_topic:  # a fanout exchange ignores routing keys
        arguments["x-dead-letter-routing-key"] = to.name
    return arguments
