"""An in-process queue server as loose as Google Pub/Sub with message ordering, for
testing the consumer engine's per-key sequencing and lease handling.

It is a *server* model, not a mock of any SDK: messages have leases and ack ids, and
it follows the service's documented rules rather than being kind to the library:

- One Pull may return several messages of one ordering key, in publish order, and it
  keeps sending a key's later messages while earlier ones are outstanding.
- A nack (or a release) of a message, or the end of its lease, makes it and every
  later outstanding message of its key available again, in order; their ack ids die.
- Acks and renewals of dead ack ids fail with :class:`cloudqueue.LeaseLost`.
- A renewal grants ``lease`` seconds whatever was asked (as Service Bus does).

Leases do not end by the clock: a test ends one with :meth:`LooseServer.expire`.
Deadlines reported to the consumer are ``lease`` seconds from each receive or
renewal, so the consumer renews held messages and so learns of expiries.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import cloudqueue
from cloudqueue._options import ConsumerOptions
from cloudqueue._url import parse_url
from cloudqueue.driver import BatchErrors, Capabilities, Delivery, Limits, SubscriptionDriver

LIMITS = Limits(
    max_message_bytes=1024, max_send_batch=10, max_send_batch_bytes=10_240,
    max_receive_batch=10, max_settle_batch=10, max_attributes=10,
    max_attribute_name_bytes=64, max_attribute_value_bytes=64,
    max_nack_delay=60.0, max_lease=60.0,
)
CAPABILITIES = Capabilities(limits=LIMITS, ordering=True, lease_extension=True)
URL = parse_url("loose://server")


@dataclass(eq=False)
class _Message:
    key: str
    index: int
    ack_id: int | None = None  # the live lease, if leased
    acked: bool = False


@dataclass
class LooseServer:
    """Messages ``key-0``, ``key-1``... per key, all published up front."""

    messages_per_key: dict[str, int]
    lease: float = 0.5
    #: The key "" means messages without an ordering key.
    limits: Limits = LIMITS
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: key -> indexes in the order their acks arrived.
    acked: dict[str, list[int]] = field(default_factory=dict)
    renewals: int = 0
    #: message id ("key-index") -> how often a pull handed it out.
    deliveries: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._keys = {
            key: [_Message(key, index) for index in range(count)]
            for key, count in self.messages_per_key.items()
        }
        self._by_ack_id: dict[int, _Message] = {}
        self._ack_ids = itertools.count(1)
        self.acked = {key: [] for key in self._keys}

    def driver(self) -> LooseDriver:
        return LooseDriver(self)

    def consumer(self, **options: object) -> cloudqueue.Consumer:
        """A portable consumer reading from this server."""
        return cloudqueue.Consumer(URL, self.driver(), ConsumerOptions(**options))  # type: ignore[arg-type]

    def async_consumer(self, **options: object) -> cloudqueue.AsyncConsumer:
        return cloudqueue.AsyncConsumer(URL, self.driver(), ConsumerOptions(**options))  # type: ignore[arg-type]

    # -- server rules ------------------------------------------------------------

    def pull(self, max_messages: int) -> list[_Message]:
        out: list[_Message] = []
        with self.lock:
            for line in self._keys.values():
                for message in line:
                    if len(out) >= max_messages:
                        return out
                    if message.acked or message.ack_id is not None:
                        continue
                    message.ack_id = next(self._ack_ids)
                    self._by_ack_id[message.ack_id] = message
                    self.deliveries[f"{message.key}-{message.index}"] += 1
                    out.append(message)
        return out

    def _live(self, ack_id: object) -> _Message | None:
        message = self._by_ack_id.get(ack_id)  # type: ignore[arg-type]
        if message is None or message.ack_id != ack_id:
            return None
        return message

    def _reset_from(self, message: _Message) -> None:
        """It and every later outstanding message of its key become available (only
        it, for messages without a key)."""
        line = self._keys[message.key]
        for later in line[message.index :] if message.key else [message]:
            if later.ack_id is not None:
                self._by_ack_id.pop(later.ack_id, None)
                later.ack_id = None

    def ack(self, ack_id: object) -> bool:
        with self.lock:
            message = self._live(ack_id)
            if message is None:
                return False
            self._by_ack_id.pop(ack_id)  # type: ignore[call-overload]
            message.ack_id = None
            message.acked = True
            self.acked[message.key].append(message.index)
            return True

    def nack(self, ack_id: object) -> bool:
        with self.lock:
            message = self._live(ack_id)
            if message is None:
                return False
            self._reset_from(message)
            return True

    def renew(self, ack_id: object) -> bool:
        with self.lock:
            self.renewals += 1
            return self._live(ack_id) is not None

    def expire(self, ack_id: object) -> None:
        """End this lease now, as if its deadline had passed."""
        with self.lock:
            message = self._live(ack_id)
            if message is not None:
                self._reset_from(message)

    def outstanding(self) -> int:
        with self.lock:
            return sum(1 for line in self._keys.values() for m in line if not m.acked)


class LooseDriver(SubscriptionDriver):
    def __init__(self, server: LooseServer) -> None:
        self.server = server

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(CAPABILITIES, limits=self.server.limits)

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        started = time.monotonic()
        got = self.server.pull(max_messages)
        if not got and wait > 0:
            time.sleep(min(wait, 0.02))
        return [
            Delivery(
                token=message.ack_id, id=f"{message.key}-{message.index}",
                body=f"{message.key}-{message.index}".encode(),
                attributes={}, delivery_attempt=1, ordering_key=message.key or None,
                lease_deadline=started + self.server.lease,
            )
            for message in got
        ]

    def _each(self, tokens: Sequence[object], act: object) -> BatchErrors:
        errors: list[cloudqueue.QueueError | None] = [
            None if act(token) else cloudqueue.LeaseLost("ack id expired")  # type: ignore[operator]
            for token in tokens
        ]
        return errors if any(errors) else None

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        return self._each(tokens, self.server.ack)

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return self._each([token for token, _ in entries], self.server.nack)

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        return self._each(tokens, self.server.nack)

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | cloudqueue.QueueError]:
        now = time.monotonic()
        return [
            now + self.server.lease if self.server.renew(token) else cloudqueue.LeaseLost("ack id expired")
            for token, _ in entries
        ]
