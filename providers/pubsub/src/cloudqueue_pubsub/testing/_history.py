"""What Seek and snapshots replay: a subscription's recent messages, a topic's retained ones,
and the messages a snapshot holds.

Google documents (https://cloud.google.com/pubsub/docs/replay-overview):

- A subscription keeps unacknowledged messages for its ``message_retention_duration``, and
  acknowledged ones too when ``retain_acked_messages`` is set; a topic with its own
  ``message_retention_duration`` keeps every published message that long, acknowledged or not.
- Seek to a time marks every message published before it acknowledged and every retained
  message published at or after it unacknowledged (so they are delivered again).
- A snapshot holds the messages unacknowledged in its subscription when it is created, and
  every message published to the topic afterwards; it expires seven days after its oldest
  unacknowledged message was published (or after creation when there is none). Seek to a
  snapshot marks those messages unacknowledged and every other one acknowledged, and works
  for any subscription of the same topic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from ._delivery import Envelope

#: Snapshots live at most this long after their oldest unacknowledged message was published.
SNAPSHOT_LIFETIME_NANOS = 7 * 24 * 3600 * 10**9


def publish_nanos(message: Any) -> int:
    return int(message.publish_time.seconds) * 10**9 + int(message.publish_time.nanos)


class SubscriptionHistory:
    """A subscription's envelopes in publish order, from the oldest one it may still replay."""

    def __init__(self) -> None:
        self._envelopes: deque[Envelope] = deque()

    def __iter__(self) -> Iterator[Envelope]:
        return iter(self._envelopes)

    def record(self, envelope: Envelope) -> None:
        self._envelopes.append(envelope)

    def replace(self, envelopes: list[Envelope]) -> None:
        self._envelopes = deque(envelopes)

    def prune(self, now_nanos: int, retention_seconds: float, retain_acked: bool) -> None:
        """Forget, from the oldest end, what can no longer be replayed.

        Lazy: a settled message behind an unsettled one waits until the older one goes, which
        costs memory, never correctness (Seek skips settled messages that are not retained).
        """
        oldest = now_nanos - int(retention_seconds * 1e9)
        envelopes = self._envelopes
        while envelopes and (
            (envelopes[0].settled and not retain_acked)
            or publish_nanos(envelopes[0].message) < oldest
        ):
            envelopes.popleft()


class TopicRetention:
    """The messages of a topic with ``message_retention_duration``, oldest first."""

    def __init__(self) -> None:
        self.messages: deque[Any] = deque()

    def record(self, message: Any, now_nanos: int, retention_seconds: float) -> None:
        self.messages.append(message)
        oldest = now_nanos - int(retention_seconds * 1e9)
        while self.messages and publish_nanos(self.messages[0]) < oldest:
            self.messages.popleft()


class Snapshot:
    """A snapshot's resource and the messages a Seek to it marks unacknowledged."""

    def __init__(self, config: Any, messages: list[Any]) -> None:
        self.config = config
        self.messages = messages

    def expired(self, now_nanos: int) -> bool:
        return bool(self.config.expire_time.ToNanoseconds() <= now_nanos)
