"""Topics, subscriptions, leases and timers of the local server, behind one lock.

One lock guards everything: the work under it is short (moving references between deques,
dicts and heaps; a rewind walks the delivered messages of one ordering key), and a single lock
keeps publish fan-out, dead-letter forwarding and ordering atomic. Waiting is done on condition
variables bound to that lock: one per subscription (new messages, freed flow-control room,
deletion) and one for the timer thread, which sleeps until the earliest entry of a heap of
deadlines (lease expiries and retry-backoff releases).

What delivery, acknowledgement and failure mean per message is decided in ``_delivery``; for a
subscription with message ordering that module's docstring states what the server does and what
Google documents. In short: a response may carry several messages of one ordering key, in
publish order; a key's outstanding messages belong to one stream (or, after a unary Pull, block
the key) until they are settled or expire; a nack or an expiry rewinds the key to the failed
message and redelivers it and every later message of the key already delivered, acknowledged
ones included; the retry backoff of the failed message holds the whole key back; a message
dead-lettered on its last attempt leaves its key without a rewind, so the key moves on.
Messages in a retry backoff count as backlog.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import _config
from ._dead_letter import dead_letter_copy
from ._delivery import DeliveryQueue, Envelope, Lease
from ._errors import (
    AckIdFailures,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from ._history import SNAPSHOT_LIFETIME_NANOS, Snapshot, publish_nanos
from ._names import (
    DELETED_TOPIC,
    parse_project,
    parse_snapshot,
    parse_subscription,
    parse_topic,
)
from ._push_config import push_request
from ._pusher import send
from ._resources import Delivered, Settings, Subscription, Topic, exponential_backoff
from ._streams import MAX_RESPONSE_BYTES, StreamSession

#: The real service returns at most 1,000 messages per Pull, whatever max_messages asks for.
MAX_MESSAGES_PER_PULL = 1000
#: Push backoff after a failed push when the subscription has no retry policy; Google
#: documents an exponential backoff from 100 milliseconds up to 60 seconds.
DEFAULT_PUSH_BACKOFF = (0.1, 60.0)
#: Push requests in flight per subscription (the real service adapts this to the endpoint).
MAX_OUTSTANDING_PUSHES = 16
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _invalid_ack_ids(subscription: Subscription, ack_ids: Iterable[str]) -> list[str]:
    """With exactly-once delivery, the ack IDs that hold no lease (expired, settled, unknown).

    Without it the service ignores them silently, and so does this server.
    """
    if not subscription.settings.exactly_once:
        return []
    leases = subscription.queue.leases
    return [ack_id for ack_id in ack_ids if ack_id not in leases]


def _report(invalid: list[str]) -> None:
    # The valid ack IDs of the request have taken effect; the failed ones are reported.
    if invalid:
        raise AckIdFailures(dict.fromkeys(invalid, AckIdFailures.INVALID_ACK_ID))


def _refuse_pull_on_push(subscription: Subscription) -> None:
    if subscription.settings.push:
        raise FailedPrecondition(
            "This method is not supported for push subscriptions: "
            f"{subscription.config.name} pushes to its push_config.push_endpoint"
        )


def _page(names: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    names.sort()
    start = 0
    if page_token:
        # The token is the last name of the previous page, so pages stay stable under inserts.
        start = next((i for i, name in enumerate(names) if name > page_token), len(names))
    page = names[start : start + size]
    more = start + size < len(names)
    return page, (page[-1] if more and page else "")


class Broker:
    """All server state. Every public method is thread-safe."""

    def __init__(self, push_backoff: tuple[float, float] = DEFAULT_PUSH_BACKOFF) -> None:
        self._push_backoff = push_backoff
        self._lock = threading.Lock()
        self._topics: dict[str, Topic] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._message_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)
        self._timer_sequence = itertools.count()
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._timer_wakeup = threading.Condition(self._lock)
        self._closed = False
        self._timer_thread = threading.Thread(
            target=self._run_timers, name="pubsub-local-timers", daemon=True
        )
        self._timer_thread.start()

    def close(self) -> None:
        """Wake every waiter so that pulls and streams end, and stop the timer thread."""
        with self._lock:
            self._closed = True
            self._timer_wakeup.notify_all()
            for subscription in self._subscriptions.values():
                subscription.changed.notify_all()
        self._timer_thread.join(timeout=5)

    # --- timers -------------------------------------------------------------------------------

    def _schedule(self, when: float, action: Callable[[float], None]) -> None:
        entry = (when, next(self._timer_sequence), action)
        heapq.heappush(self._timers, entry)
        if self._timers[0] is entry:
            self._timer_wakeup.notify()

    def _run_timers(self) -> None:
        with self._lock:
            while not self._closed:
                if not self._timers:
                    self._timer_wakeup.wait()
                    continue
                now = time.monotonic()
                when = self._timers[0][0]
                if when > now:
                    self._timer_wakeup.wait(when - now)
                    continue
                _, _, action = heapq.heappop(self._timers)
                action(now)

    # --- topics -------------------------------------------------------------------------------

    def _topic_exists(self, name: str) -> bool:
        return name in self._topics

    def _get_topic(self, name: str) -> Topic:
        parse_topic(name)
        topic = self._topics.get(name)
        if topic is None:
            raise NotFound(f"Topic not found: {name}")
        return topic

    def create_topic(self, request: Any) -> Any:
        config = _config.new_topic(request)
        with self._lock:
            if config.name in self._topics:
                raise AlreadyExists(f"Topic already exists: {config.name}")
            self._topics[config.name] = Topic(config)
        return config

    def get_topic(self, name: str) -> Any:
        with self._lock:
            return self._get_topic(name).config

    def update_topic(self, update: Any, paths: Sequence[str]) -> Any:
        with self._lock:
            topic = self._get_topic(update.name)
            topic.configure(_config.updated_topic(topic.config, update, paths))
            return topic.config

    def list_topics(self, project: str, page_size: int, page_token: str) -> tuple[list[Any], str]:
        parse_project(project)
        prefix = project + "/topics/"
        with self._lock:
            names = [name for name in self._topics if name.startswith(prefix)]
            page, token = _page(names, page_size, page_token)
            return [self._topics[name].config for name in page], token

    def list_topic_subscriptions(
        self, topic_name: str, page_size: int, page_token: str
    ) -> tuple[list[str], str]:
        with self._lock:
            return _page(list(self._get_topic(topic_name).subscriptions), page_size, page_token)

    def delete_topic(self, name: str) -> None:
        with self._lock:
            topic = self._get_topic(name)
            del self._topics[name]
            # As in the real service, the subscriptions stay and report a deleted topic.
            for subscription_name in topic.subscriptions:
                subscription = self._subscriptions[subscription_name]
                config = _config.SubscriptionPb()
                config.CopyFrom(subscription.config)
                config.topic = DELETED_TOPIC
                subscription.configure(config)

    # --- subscriptions ------------------------------------------------------------------------

    def _get_subscription(self, name: str) -> Subscription:
        parse_subscription(name)
        subscription = self._subscriptions.get(name)
        if subscription is None:
            raise NotFound(f"Subscription does not exist: {name}")
        return subscription

    def create_subscription(self, request: Any) -> Any:
        with self._lock:
            config = _config.new_subscription(request, self._topic_exists)
            if config.name in self._subscriptions:
                raise AlreadyExists(f"Subscription already exists: {config.name}")
            subscription = Subscription(config, self._lock, self._ack_ids)
            self._subscriptions[config.name] = subscription
            self._topics[config.topic].subscriptions.add(config.name)
            self._start_pushing(subscription)
            return config

    def get_subscription(self, name: str) -> Any:
        with self._lock:
            return self._get_subscription(name).config

    def update_subscription(self, update: Any, paths: Sequence[str]) -> Any:
        with self._lock:
            subscription = self._get_subscription(update.name)
            subscription.configure(
                _config.updated_subscription(subscription.config, update, paths, self._topic_exists)
            )
            subscription.changed.notify_all()
            self._start_pushing(subscription)
            return subscription.config

    def modify_push_config(self, name: str, push_config: Any) -> None:
        """Switch a subscription between pull and push (an empty endpoint means pull)."""
        with self._lock:
            subscription = self._get_subscription(name)
            config = _config.with_push_config(subscription.config, push_config)
            subscription.configure(config)
            subscription.changed.notify_all()
            self._start_pushing(subscription)

    def list_subscriptions(
        self, project: str, page_size: int, page_token: str
    ) -> tuple[list[Any], str]:
        parse_project(project)
        prefix = project + "/subscriptions/"
        with self._lock:
            names = [name for name in self._subscriptions if name.startswith(prefix)]
            page, token = _page(names, page_size, page_token)
            return [self._subscriptions[name].config for name in page], token

    def delete_subscription(self, name: str) -> None:
        with self._lock:
            subscription = self._get_subscription(name)
            del self._subscriptions[name]
            topic = self._topics.get(subscription.config.topic)
            if topic is not None:
                topic.subscriptions.discard(name)
            subscription.deleted = True
            subscription.changed.notify_all()

    def backlog(self, name: str) -> int:
        """Messages of a subscription not yet acknowledged (for tests and benchmarks)."""
        with self._lock:
            return len(self._get_subscription(name).queue)

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, topic_name: str, messages: Sequence[Any], request_bytes: int) -> list[str]:
        _config.check_publish(messages, request_bytes)
        with self._lock:
            topic = self._get_topic(topic_name)
            return self._fan_out(topic, messages)

    def _fan_out(self, topic: Topic, messages: Sequence[Any]) -> list[str]:
        """Stamp IDs and publish times on messages and give each subscription its envelopes.

        Topic retention and the topic's snapshots keep every message; each subscription gets
        the messages its filter accepts, in its queue and its history.
        """
        nanos = time.time_ns()
        published_at = nanos / 1e9
        message_ids: list[str] = []
        subscriptions = [self._subscriptions[name] for name in topic.subscriptions]
        snapshots = [self._snapshots[name] for name in topic.snapshots]
        for message in messages:
            message_id = str(next(self._message_ids))
            message.message_id = message_id
            message.publish_time.FromNanoseconds(nanos)
            message_ids.append(message_id)
            if topic.retention is not None:
                topic.retention.record(message, nanos, topic.retention_seconds)
            for snapshot in snapshots:
                snapshot.messages.append(message)
            if not subscriptions:
                continue
            size = message.ByteSize()
            for subscription in subscriptions:
                predicate = subscription.predicate
                if predicate is not None and not predicate(message.attributes):
                    continue  # the real service acknowledges filtered-out messages itself
                key = message.ordering_key if subscription.settings.ordered else ""
                envelope = Envelope(message, size, key, published_at)
                subscription.queue.enqueue(envelope)
                subscription.history.record(envelope)
        for subscription in subscriptions:
            subscription.history.prune(
                nanos, subscription.settings.retention, subscription.config.retain_acked_messages
            )
            subscription.changed.notify_all()
        return message_ids

    # --- delivery -----------------------------------------------------------------------------

    def _deliver(
        self,
        subscription: Subscription,
        max_messages: int,
        max_bytes: int,
        ack_deadline: float,
        owner: StreamSession | None,
    ) -> list[Delivered]:
        settings = subscription.settings
        # A message larger than the byte budget still goes to a subscriber holding nothing.
        at_least_one = owner is None or owner.outstanding_messages == 0
        deadline = time.monotonic() + ack_deadline
        leases = subscription.queue.deliver(
            max_messages,
            max_bytes,
            time.time() - settings.retention,
            at_least_one,
            deadline,
            owner,
        )
        if not leases:
            return []
        with_attempts = bool(settings.dead_letter_topic)
        delivered = [
            Delivered(
                lease.ack_id,
                lease.envelope.message,
                lease.envelope.attempts if with_attempts else 0,
            )
            for lease in leases
        ]
        if owner is not None:
            owner.outstanding_messages += len(leases)
            owner.outstanding_bytes += sum(lease.envelope.size for lease in leases)
        ack_ids = [lease.ack_id for lease in leases]
        self._schedule(deadline, lambda now: self._expire(subscription, ack_ids, now))
        return delivered

    def pull(
        self,
        name: str,
        max_messages: int,
        return_immediately: bool,
        wait_seconds: float,
    ) -> list[Delivered]:
        if max_messages <= 0:
            raise InvalidArgument("max_messages must be positive")
        with self._lock:
            subscription = self._get_subscription(name)
            _refuse_pull_on_push(subscription)
            give_up_at = time.monotonic() + wait_seconds
            while True:
                if subscription.deleted:
                    raise NotFound(f"Subscription does not exist: {name}")
                if self._closed:
                    raise Unavailable("The server is shutting down")
                delivered = self._deliver(
                    subscription,
                    min(max_messages, MAX_MESSAGES_PER_PULL),
                    MAX_RESPONSE_BYTES,
                    subscription.settings.ack_deadline,
                    None,
                )
                if delivered or return_immediately:
                    return delivered
                remaining = give_up_at - time.monotonic()
                if remaining <= 0:
                    return []
                subscription.changed.wait(remaining)

    # --- settling -----------------------------------------------------------------------------

    def acknowledge(self, name: str, ack_ids: Sequence[str]) -> None:
        if not ack_ids:
            raise InvalidArgument("ack_ids must not be empty")
        with self._lock:
            subscription = self._get_subscription(name)
            invalid = _invalid_ack_ids(subscription, ack_ids)
            self._acknowledge(subscription, ack_ids)
        _report(invalid)

    def _acknowledge(self, subscription: Subscription, ack_ids: Iterable[str]) -> None:
        queue = subscription.queue
        settled = False
        for ack_id in ack_ids:
            # Unknown, expired or repeated ack IDs are ignored, as the real service does
            # without exactly-once delivery.
            lease = queue.end_lease(ack_id)
            if lease is not None:
                queue.acknowledge(lease.envelope)
                settled = True
        if settled:
            subscription.changed.notify_all()

    def modify_ack_deadline(self, name: str, ack_ids: Sequence[str], seconds: int) -> None:
        if not ack_ids:
            raise InvalidArgument("ack_ids must not be empty")
        _config.check_ack_deadline(seconds, allow_zero=True, what="ack_deadline_seconds")
        with self._lock:
            subscription = self._get_subscription(name)
            invalid = _invalid_ack_ids(subscription, ack_ids)
            self._modify_ack_deadline(subscription, ack_ids, seconds)
        _report(invalid)

    def _modify_ack_deadline(
        self, subscription: Subscription, ack_ids: Iterable[str], seconds: int
    ) -> None:
        now = time.monotonic()
        queue = subscription.queue
        if seconds == 0:
            failed = [lease for lease in map(queue.end_lease, ack_ids) if lease is not None]
            self._redeliver_or_dead_letter(subscription, failed, now)
            return
        deadline = now + seconds
        extended: list[str] = []
        for ack_id in ack_ids:
            lease = queue.leases.get(ack_id)
            if lease is not None:
                lease.deadline = deadline
                extended.append(ack_id)
        if extended:
            self._schedule(deadline, lambda at: self._expire(subscription, extended, at))

    def _expire(self, subscription: Subscription, ack_ids: list[str], now: float) -> None:
        """Timer action: end the leases among ack_ids whose deadline has passed."""
        if subscription.deleted:
            return
        queue = subscription.queue
        expired: list[Lease] = []
        for ack_id in ack_ids:
            lease = queue.leases.get(ack_id)
            # A later deadline means the lease was extended; its own timer entry handles it.
            if lease is not None and lease.deadline <= now:
                queue.end_lease(ack_id)
                expired.append(lease)
        self._redeliver_or_dead_letter(subscription, expired, now)

    def _redeliver_or_dead_letter(
        self, subscription: Subscription, failed: list[Lease], now: float
    ) -> None:
        """A nack or an expiry: forward exhausted messages, delay or redeliver the others.

        A keyed message rewinds its key (it and the later messages of the key go out again, in
        order); its retry backoff holds the whole key back.
        """
        if not failed:
            return
        settings = subscription.settings
        queue = subscription.queue
        redeliver_now: list[Envelope] = []
        delayed: dict[float, list[Envelope]] = {}
        for lease in failed:
            envelope = lease.envelope
            if (
                settings.dead_letter_topic
                and envelope.attempts >= settings.max_delivery_attempts
                and self._forward_to_dead_letter_topic(subscription, envelope)
            ):
                queue.drop(envelope)
                continue
            delay = self._backoff(settings, envelope.attempts)
            if envelope.ordering_key:
                hold_until = now + delay if delay > 0 else 0.0
                if queue.rewind(envelope, hold_until):
                    release = functools.partial(
                        self._release_key, subscription, envelope.ordering_key
                    )
                    self._schedule(hold_until, release)
            elif delay > 0:
                delayed.setdefault(delay, []).append(envelope)
            else:
                redeliver_now.append(envelope)
        if redeliver_now:
            queue.requeue(redeliver_now)
        for delay, envelopes in delayed.items():
            queue.park(envelopes)
            release = functools.partial(self._release, subscription, queue, envelopes)
            self._schedule(now + delay, release)
        subscription.changed.notify_all()

    def _backoff(self, settings: Settings, attempts: int) -> float:
        if settings.push and not settings.has_retry_policy:
            return exponential_backoff(*self._push_backoff, attempts)
        return settings.backoff(attempts)

    def _release(
        self,
        subscription: Subscription,
        queue: DeliveryQueue,
        envelopes: list[Envelope],
        now: float,
    ) -> None:
        """Timer action: the retry backoff of these unkeyed envelopes is over."""
        if subscription.deleted or subscription.queue is not queue:
            return  # gone, or a Seek has replaced the queue and decided their fate
        queue.unpark(envelopes)
        subscription.changed.notify_all()

    def _release_key(self, subscription: Subscription, key: str, now: float) -> None:
        """Timer action: the retry backoff holding an ordering key back may be over."""
        if subscription.deleted:
            return
        if subscription.queue.release_key(key, now):
            subscription.changed.notify_all()

    def _forward_to_dead_letter_topic(self, subscription: Subscription, envelope: Envelope) -> bool:
        topic = self._topics.get(subscription.settings.dead_letter_topic)
        if topic is None:
            # The real service keeps the message when it cannot forward it; so do we.
            return False
        message = dead_letter_copy(envelope.message, envelope.attempts, subscription.config.name)
        self._fan_out(topic, [message])
        return True

    # --- streaming pull -----------------------------------------------------------------------

    def open_stream(
        self, name: str, ack_deadline: int, max_messages: int, max_bytes: int
    ) -> StreamSession:
        _config.check_ack_deadline(
            ack_deadline, allow_zero=False, what="stream_ack_deadline_seconds"
        )
        if max_messages < 0 or max_bytes < 0:
            raise InvalidArgument("Flow control limits must not be negative")
        with self._lock:
            subscription = self._get_subscription(name)
            _refuse_pull_on_push(subscription)
            return StreamSession(self, subscription, ack_deadline, max_messages, max_bytes)

    def update_stream(
        self, session: StreamSession, ack_deadline: int, max_messages: int, max_bytes: int
    ) -> None:
        if ack_deadline:
            _config.check_ack_deadline(
                ack_deadline, allow_zero=False, what="stream_ack_deadline_seconds"
            )
        with self._lock:
            if ack_deadline:
                session.ack_deadline = ack_deadline
            if max_messages > 0:
                session.max_messages = max_messages
            if max_bytes > 0:
                session.max_bytes = max_bytes
            session.subscription.changed.notify_all()

    def stream_settle(
        self,
        session: StreamSession,
        ack_ids: Sequence[str],
        modify_ack_ids: Sequence[str],
        modify_seconds: Sequence[int],
    ) -> None:
        """Acks and deadline changes carried on a StreamingPull request."""
        if len(modify_ack_ids) != len(modify_seconds):
            raise InvalidArgument(
                "modify_deadline_seconds and modify_deadline_ack_ids must have the same length"
            )
        for seconds in modify_seconds:
            _config.check_ack_deadline(seconds, allow_zero=True, what="modify_deadline_seconds")
        with self._lock:
            subscription = session.subscription
            if subscription.deleted:
                return  # the stream loop reports NOT_FOUND
            if ack_ids:
                self._acknowledge(subscription, ack_ids)
            by_seconds: dict[int, list[str]] = {}
            for ack_id, seconds in zip(modify_ack_ids, modify_seconds, strict=True):
                by_seconds.setdefault(seconds, []).append(ack_id)
            for seconds, ids in by_seconds.items():
                self._modify_ack_deadline(subscription, ids, seconds)

    def close_stream(self, session: StreamSession, error: Exception | None) -> None:
        with self._lock:
            session.closed = True
            if error is not None and session.error is None:
                session.error = error
            session.subscription.changed.notify_all()

    def next_stream_batch(self, session: StreamSession) -> list[Delivered] | None:
        """Wait for messages the stream's flow control admits; None once the client is gone.

        Raises NotFound when the subscription is deleted, Unavailable when the server stops,
        or the error a request on the stream carried.
        """
        subscription = session.subscription
        with self._lock:
            while True:
                if session.error is not None:
                    raise session.error
                if subscription.deleted:
                    raise NotFound(f"Subscription does not exist: {subscription.config.name}")
                if session.closed:
                    return None
                if self._closed:
                    # UNAVAILABLE, like a real server going away: clients retry elsewhere.
                    raise Unavailable("The server is shutting down")
                messages, size = session.room()
                if messages > 0 and subscription.queue.has_ready():
                    delivered = self._deliver(
                        subscription, messages, size, session.ack_deadline, session
                    )
                    if delivered:
                        return delivered
                subscription.changed.wait()

    # --- push ---------------------------------------------------------------------------------

    def _start_pushing(self, subscription: Subscription) -> None:
        """Start the subscription's push loop if it pushes and no loop runs (lock held)."""
        if not subscription.settings.push or subscription.pushing or self._closed:
            return
        subscription.pushing = True
        threading.Thread(
            target=self._push_loop, args=(subscription,), daemon=True, name="pubsub-local-push"
        ).start()

    def _push_loop(self, subscription: Subscription) -> None:
        """Lease messages one at a time and push each from its own thread.

        One message per lease keeps ordering keys to one outstanding push each: a key's next
        message is not leased until the previous one is settled (the unary Pull rule).
        """
        with self._lock:
            try:
                while not (self._closed or subscription.deleted) and subscription.settings.push:
                    if (
                        subscription.push_outstanding < MAX_OUTSTANDING_PUSHES
                        and subscription.queue.has_ready()
                    ):
                        delivered = self._deliver(
                            subscription,
                            1,
                            MAX_RESPONSE_BYTES,
                            subscription.settings.ack_deadline,
                            None,
                        )
                        if delivered:
                            self._push(subscription, delivered[0])
                            continue
                    subscription.changed.wait()
            finally:
                subscription.pushing = False

    def _push(self, subscription: Subscription, delivered: Delivered) -> None:
        request = push_request(subscription.config, delivered.message, delivered.delivery_attempt)
        subscription.push_outstanding += 1
        threading.Thread(
            target=self._push_one,
            args=(subscription, request, delivered.ack_id, subscription.settings.ack_deadline),
            daemon=True,
            name="pubsub-local-push-request",
        ).start()

    def _push_one(
        self, subscription: Subscription, request: Any, ack_id: str, timeout: float
    ) -> None:
        acknowledged = send(request, timeout)
        with self._lock:
            subscription.push_outstanding -= 1
            if subscription.deleted:
                return
            if acknowledged:
                # After the ack deadline the lease is gone and this acknowledges nothing.
                self._acknowledge(subscription, [ack_id])
            else:
                lease = subscription.queue.end_lease(ack_id)
                if lease is not None:
                    self._redeliver_or_dead_letter(subscription, [lease], time.monotonic())
            subscription.changed.notify_all()

    # --- snapshots and seek -------------------------------------------------------------------

    def _get_snapshot(self, name: str) -> Snapshot:
        parse_snapshot(name)
        snapshot = self._snapshots.get(name)
        if snapshot is not None and snapshot.expired(time.time_ns()):
            self._forget_snapshot(snapshot)
            snapshot = None
        if snapshot is None:
            raise NotFound(f"Snapshot does not exist: {name}")
        return snapshot

    def _forget_snapshot(self, snapshot: Snapshot) -> None:
        del self._snapshots[snapshot.config.name]
        topic = self._topics.get(snapshot.config.topic)
        if topic is not None:
            topic.snapshots.discard(snapshot.config.name)

    def create_snapshot(self, name: str, subscription_name: str, labels: Any) -> Any:
        parse_snapshot(name)
        with self._lock:
            subscription = self._get_subscription(subscription_name)
            topic = self._topics.get(subscription.config.topic)
            if topic is None:
                raise FailedPrecondition(
                    f"Cannot snapshot {subscription_name}: its topic has been deleted"
                )
            if name in self._snapshots and not self._snapshots[name].expired(time.time_ns()):
                raise AlreadyExists(f"Snapshot already exists: {name}")
            unacked = [e.message for e in subscription.history if not e.settled]
            oldest = publish_nanos(unacked[0]) if unacked else time.time_ns()
            config = _config.SnapshotPb(name=name, topic=topic.config.name, labels=labels)
            config.expire_time.FromNanoseconds(oldest + SNAPSHOT_LIFETIME_NANOS)
            self._snapshots[name] = Snapshot(config, unacked)
            topic.snapshots.add(name)
            return config

    def get_snapshot(self, name: str) -> Any:
        with self._lock:
            return self._get_snapshot(name).config

    def update_snapshot(self, update: Any, paths: Sequence[str]) -> Any:
        with self._lock:
            snapshot = self._get_snapshot(update.name)
            snapshot.config = _config.updated_snapshot(snapshot.config, update, paths)
            return snapshot.config

    def list_snapshots(
        self, project: str, page_size: int, page_token: str
    ) -> tuple[list[Any], str]:
        parse_project(project)
        prefix = project + "/snapshots/"
        now = time.time_ns()
        with self._lock:
            for snapshot in [s for s in self._snapshots.values() if s.expired(now)]:
                self._forget_snapshot(snapshot)
            names = [name for name in self._snapshots if name.startswith(prefix)]
            page, token = _page(names, page_size, page_token)
            return [self._snapshots[name].config for name in page], token

    def delete_snapshot(self, name: str) -> None:
        with self._lock:
            self._forget_snapshot(self._get_snapshot(name))

    def seek_to_time(self, subscription_name: str, when: Any) -> None:
        """Messages published before ``when`` become acknowledged, retained later ones not."""
        cutoff = when.ToNanoseconds()
        with self._lock:
            subscription = self._get_subscription(subscription_name)
            retain_acked = subscription.config.retain_acked_messages
            candidates = {
                e.message.message_id: e
                for e in subscription.history
                if retain_acked or not e.settled
            }
            topic = self._topics.get(subscription.config.topic)
            if topic is not None and topic.retention is not None:
                # Topic retention keeps messages whatever became of them in the subscription.
                for message in topic.retention.messages:
                    if publish_nanos(message) >= cutoff:
                        self._add_candidate(subscription, candidates, message)
            self._reset(
                subscription,
                candidates,
                lambda envelope: publish_nanos(envelope.message) >= cutoff,
            )

    def seek_to_snapshot(self, subscription_name: str, snapshot_name: str) -> None:
        """The snapshot's messages become unacknowledged, every other message acknowledged."""
        with self._lock:
            subscription = self._get_subscription(subscription_name)
            snapshot = self._get_snapshot(snapshot_name)
            if snapshot.config.topic != subscription.config.topic:
                raise InvalidArgument(
                    f"Snapshot {snapshot_name} is of topic {snapshot.config.topic}; "
                    f"{subscription_name} subscribes to {subscription.config.topic}"
                )
            retain_acked = subscription.config.retain_acked_messages
            candidates = {
                e.message.message_id: e
                for e in subscription.history
                if retain_acked or not e.settled
            }
            wanted = set()
            for message in snapshot.messages:
                if self._add_candidate(subscription, candidates, message):
                    wanted.add(message.message_id)
            self._reset(subscription, candidates, lambda e: e.message.message_id in wanted)

    def _add_candidate(
        self, subscription: Subscription, candidates: dict[str, Envelope], message: Any
    ) -> bool:
        """Make ``message`` replayable in the subscription unless its filter refuses it."""
        predicate = subscription.predicate
        if predicate is not None and not predicate(message.attributes):
            return False
        if message.message_id not in candidates:
            key = message.ordering_key if subscription.settings.ordered else ""
            envelope = Envelope(message, message.ByteSize(), key, publish_nanos(message) / 1e9)
            envelope.settled = True
            candidates[message.message_id] = envelope
        return True

    def _reset(
        self,
        subscription: Subscription,
        candidates: dict[str, Envelope],
        unacked: Callable[[Envelope], bool],
    ) -> None:
        """Rebuild the subscription's queue from its replayable messages, in publish order.

        Outstanding leases end (their ack IDs no longer acknowledge anything); the messages
        ``unacked`` accepts are delivered again, the others count as acknowledged.
        """
        old = subscription.queue
        for lease in old.leases.values():
            if lease.owner is not None:
                lease.owner.lease_ended(lease.envelope.size)
        queue = DeliveryQueue(iter(subscription.ack_ids))
        envelopes = sorted(candidates.values(), key=lambda e: int(e.message.message_id))
        for envelope in envelopes:
            envelope.lease = None
            envelope.acked = False
            envelope.settled = not unacked(envelope)
            if not envelope.settled:
                queue.enqueue(envelope)
        subscription.queue = queue
        subscription.history.replace(envelopes)
        subscription.history.prune(
            time.time_ns(), subscription.settings.retention, subscription.config.retain_acked_messages
        )
        subscription.changed.notify_all()
