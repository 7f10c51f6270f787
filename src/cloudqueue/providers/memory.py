"""The in-memory provider: ``memory://orders``, ``memory://events?subscription=billing``.

The reference implementation of the portable semantics: every other provider
is compared with it by the contract suite. Destinations live as long as the
process and spring into existence on first use (the only provider besides
SQLite that creates them implicitly). Safe under threads and asyncio: its
calls never block on I/O, so the asyncio API calls it on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Mapping, Sequence

from .._message import Message
from .._url import Url
from ..driver import (
    BatchErrors,
    Capabilities,
    DeadLetterFacts,
    Declaration,
    Delivery,
    Limits,
    Provider,
    QueueStats,
    RedriveStamp,
    SubscriptionDriver,
    TopicDriver,
)
from ..errors import InvalidArgument, LeaseLost, NotFound, QueueError
from ..hookspecs import hookimpl
from . import _broker
from ._broker import Broker, DeadLetterOrigin, Topic
from ._operations import check_peek_size, dead_letter_facts, only_source

__all__ = ["DeadLetterOrigin", "MemoryProvider", "cloudqueue_providers"]

#: ``messaging.system`` on telemetry: not a registered OpenTelemetry value, so namespaced.
TELEMETRY_ATTRIBUTES: Mapping[str, str | int] = {"messaging.system": "cloudqueue.memory"}

LIMITS = Limits(
    max_message_bytes=4 * 1024 * 1024,
    max_send_batch=1000,
    max_send_batch_bytes=64 * 1024 * 1024,
    max_receive_batch=1000,
    max_settle_batch=1000,
    max_attributes=100,
    max_attribute_name_bytes=256,
    max_attribute_value_bytes=4096,
    max_delay=7 * 86400.0,
    max_nack_delay=7 * 86400.0,
    max_lease=12 * 3600.0,
    max_receive_wait=20.0,
    max_key_length=256,
)


def capabilities_for(topic: Topic | None) -> Capabilities:
    settings = topic.settings if topic is not None else _broker.TopicSettings()
    return _capabilities(settings.ordered, settings.deduplicated)


@functools.cache
def _capabilities(ordered: bool, deduplicated: bool) -> Capabilities:
    return Capabilities(
        limits=LIMITS,
        ordering=ordered,
        deduplication=deduplicated,
        delayed_delivery=True,
        dead_letter=True,
        delivery_attempt=True,
        nack_delay=True,
        lease_extension=True,
        fan_out=True,
        implicit_create=True,
        durable=False,
        filters=True,
    )


class MemoryTopic(TopicDriver):
    """Sends to a topic (every subscription its filter lets in) or, with ``only``,
    to that one subscription of it (a redrive target)."""

    def __init__(self, topic: Topic, only: str | None = None) -> None:
        self._topic = topic
        self._only = only

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_for(self._topic)

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        return self._topic.publish(messages, self._only)

    async def asend_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        return self._topic.publish(messages, self._only)

    def native_objects(self) -> Iterable[object]:
        return (self._topic,)

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return TELEMETRY_ATTRIBUTES

    async def aclose(self) -> None:
        self.close()


class MemorySubscription(SubscriptionDriver):
    def __init__(self, subscription: _broker._Subscription) -> None:
        self._sub = subscription
        self._lock = subscription.topic.broker.lock
        #: Set by interrupt_receives: waiting receives return what they have.
        self._interrupted = False

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_for(self._sub.topic)

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return TELEMETRY_ATTRIBUTES

    def _take(self, max_messages: int) -> tuple[list[Delivery], float | None]:
        """Deliveries if any are ready, else when something may become ready."""
        sub = self._sub
        if sub.deleted:
            raise NotFound(f"memory destination {_describe(sub)} was deleted")
        now = time.time()
        sub.advance(now)
        taken = sub.take(max_messages, now)
        return taken, (None if taken else sub.next_due())

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        give_up = time.time() + wait
        with self._lock:
            while True:
                taken, next_due = self._take(max_messages)
                if taken:  # the clock is read only when there is a wait to time
                    return taken
                now = time.time()
                if now >= give_up or self._interrupted:
                    return taken
                until = give_up if next_due is None else min(give_up, next_due)
                self._sub.sync_waiting += 1
                try:
                    self._sub.sync_waiters.wait(max(0.0, until - now))
                finally:
                    self._sub.sync_waiting -= 1

    async def areceive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        give_up = time.time() + wait
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                taken, next_due = self._take(max_messages)
                if taken:  # the clock is read only when there is a wait to time
                    return taken
                now = time.time()
                if now >= give_up or self._interrupted:
                    return taken
                future: asyncio.Future[None] = loop.create_future()
                waiter = (loop, future)
                self._sub.async_waiters.append(waiter)
            until = give_up if next_due is None else min(give_up, next_due)
            try:
                async with asyncio.timeout(max(0.0, until - now)):
                    await future
            except TimeoutError:
                pass
            finally:
                if not future.done():  # timed out or cancelled: stop listening
                    with self._lock:
                        if waiter in self._sub.async_waiters:
                            self._sub.async_waiters.remove(waiter)

    def interrupt_receives(self) -> None:
        with self._lock:
            self._interrupted = True
            self._sub.notify()  # others' receives wake too, look, and wait again

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        _broker.settle(self._sub, tokens, _broker.do_ack)
        return None

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        _broker.settle(self._sub, entries, _broker.do_nack)
        return None

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        _broker.settle(self._sub, entries, _broker.do_dead_letter)
        return None

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        _broker.settle(self._sub, tokens, _broker.do_release)
        return None

    async def arelease(self, tokens: Sequence[object]) -> BatchErrors:
        return self.release(tokens)

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        sub = self._sub
        out: list[float | QueueError] = []
        with self._lock:
            now, monotonic_now = time.time(), time.monotonic()
            for token, seconds in entries:
                record = sub.leased.get(token)
                if record is None:
                    out.append(LeaseLost("the lease has already ended or been settled"))
                    continue
                deadline = now + seconds
                record.lease_end = deadline
                sub.lease_until([token], deadline)
                out.append(monotonic_now + seconds)
            sub.compact_leases()  # the old deadline's entry is stale now
        return out

    async def aack(self, tokens: Sequence[object]) -> BatchErrors:
        return self.ack(tokens)

    async def anack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return self.nack(entries)

    async def adead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        return self.dead_letter(entries)

    async def aextend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        return self.extend(entries)

    def can_move_dead_letters(self, target: TopicDriver) -> bool:
        return isinstance(target, MemoryTopic) and target._topic.broker is self._sub.topic.broker

    def move_dead_letters(
        self, target: TopicDriver, max_messages: int, stamp: RedriveStamp
    ) -> list[str | None]:
        assert isinstance(target, MemoryTopic)  # can_move_dead_letters said so
        sub = self._sub
        with self._lock:  # one step: no receive sees a message in both places or neither
            if sub.deleted:
                raise NotFound(f"memory destination {_describe(sub)} was deleted")
            now = time.time()
            sub.advance(now)
            messages, reasons = sub.stamped_dead_letters(max_messages, stamp)
            if not messages or not target._topic.put_back_moved(messages, target._only, now):
                return []
            sub.remove_first(len(messages))
        return reasons

    async def amove_dead_letters(
        self, target: TopicDriver, max_messages: int, stamp: RedriveStamp
    ) -> list[str | None]:
        return self.move_dead_letters(target, max_messages, stamp)

    async def aclose(self) -> None:
        self.close()

    def native_objects(self) -> Iterable[object]:
        return (self._sub,)


def _describe(sub: _broker._Subscription) -> str:
    return repr(sub.topic.name) + (f" subscription {sub.name!r}" if sub.name else "")


class MemoryProvider(Provider):
    """``memory://<destination>[?subscription=<name>]``; one broker per provider."""

    schemes = ("memory",)
    distribution = "cloudqueue"
    parameters = frozenset({"subscription"})
    supports_filters = True

    def __init__(self) -> None:
        self.broker = Broker()

    @staticmethod
    def _names(url: Url) -> tuple[str, str]:
        name = url.host + url.path
        if not name or name.startswith("/") or name.endswith("/"):
            raise InvalidArgument(
                f"memory URLs name a destination: memory://<name>, not {url}"
            )
        subscription = url.subscription
        if subscription == "":
            raise InvalidArgument("the subscription parameter must not be empty")
        return name, subscription or ""

    def open_topic(self, url: Url) -> TopicDriver:
        name, _ = self._names(url)
        if url.subscription is not None:
            raise InvalidArgument(
                f"a producer sends to a destination, not to a subscription: {url}"
            )
        return MemoryTopic(self.broker.topic(name, create_queue=True))

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        name, subscription = self._names(url)
        return MemorySubscription(self.broker.subscription(name, subscription))

    def capabilities(self, url: Url) -> Capabilities:
        name, _ = self._names(url)
        return capabilities_for(self.broker.topics.get(name))

    def declare(self, url: Url, declaration: Declaration) -> None:
        name, subscription = self._names(url)
        self.broker.declare(name, subscription, declaration)

    def dead_letter_url(self, url: Url) -> Url:
        name, subscription = self._names(url)
        return url.replace(host=_broker.dead_letter_name(name, subscription), path="", params={})

    def purge(self, url: Url) -> None:
        self.broker.purge(*self._names(url))

    def delete(self, url: Url) -> None:
        name, _ = self._names(url)
        self.broker.delete(name, url.subscription)

    # -- operations -------------------------------------------------------------------

    supports_peek = True

    def stats(self, url: Url) -> QueueStats:
        name, _ = self._names(url)
        return self.broker.stats(name, url.subscription)

    def peek(self, url: Url, max_messages: int) -> list[Delivery]:
        name, _ = self._names(url)
        return self.broker.peek(name, url.subscription, check_peek_size(max_messages))

    def dead_letter_facts(self, url: Url, delivery: Delivery) -> DeadLetterFacts:
        return dead_letter_facts(delivery)

    def redrive_source(self, url: Url) -> Url:
        name, subscription = self._names(url)
        sources = [] if subscription else self.broker.dead_letter_sources(name)
        topic, source = only_source(str(url), sources)
        return url.replace(host=topic, path="", params={"subscription": source} if source else {})

    def open_redrive_target(self, url: Url) -> TopicDriver:
        name, subscription = self._names(url)
        if not subscription:
            return self.open_topic(url)
        self.broker.subscription(name, subscription)  # springs into existence, as anywhere
        return MemoryTopic(self.broker.topic(name, create_queue=False), only=subscription)


_PROVIDER = MemoryProvider()


@hookimpl
def cloudqueue_providers() -> list[Provider]:
    return [_PROVIDER]
