"""The subscription driver: synchronous Pull, and settlements as lists of ack ids.

Why Pull and not StreamingPull: measured with ``bench/bench_pubsub.py`` against the local
server (10,000 messages published, received and acknowledged, one process), the official
client's streaming pull with its own lease management and batched acks ran at about 12,500
messages/s and a plain Pull (1,000) + Acknowledge loop at about 21,000/s; this driver, on
Pull, at about 43,000/s. Streaming also sent a ModifyAckDeadline for every 100 messages
(lease management) that Pull does not need. Pull also fits the driver contract exactly: one
``receive_batch`` is one request that returns within the asked wait, with no background
stream, thread or flow-control state to keep in step
with the portable layer's own prefetch, and nothing to tear down on close.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cloudqueue.driver import BatchErrors, Capabilities, Delivery, SubscriptionDriver
from cloudqueue.errors import NotFound, QueueError, Unsupported
from cloudqueue.wire import DEAD_LETTER_REASON
from google.api_core import exceptions as api
from google.pubsub_v1 import PublishRequest, PullRequest

from ._capabilities import LIMITS, subscription_capabilities
from ._clients import Clients, publish
from ._errors import translate_errors
from ._names import Names
from ._ops import (
    SOURCE_DELIVERY_COUNT,
    SOURCE_PROJECT,
    SOURCE_PUBLISH_TIME,
    SOURCE_SUBSCRIPTION,
)
from ._tracing import telemetry_attributes
from ._wire import ORIGINAL_ID_MARKER, Token, delivery_of

__all__ = ["PubSubSubscription"]

#: Pub/Sub's shortest ack deadline, assumed until the subscription's own is known.
_MIN_ACK_DEADLINE = 10
#: A Pull is given at least this long: shorter deadlines expire before a real server answers.
_MIN_PULL_SECONDS = 0.3
#: A Pull waits at most this long, so that interrupt_receives (close) is honoured soon;
#: a receive with a longer wait pulls again.
_MAX_PULL_SECONDS = 2.0
_CALL_TIMEOUT = 30.0

_PB_PULL: Any = PullRequest.pb()
_PB_PUBLISH: Any = PublishRequest.pb()


class PubSubSubscription(SubscriptionDriver):
    """Receives from one subscription with the GAPIC ``SubscriberClient``."""

    def __init__(self, clients: Clients, names: Names, subscription: str) -> None:
        self._clients = clients
        self._names = names
        self._subscription = subscription
        self._where = names.describe()
        self._lock = threading.Lock()
        self._resource: Any | None = None  # the Subscription, once read from the server
        #: Set by interrupt_receives: receives return after their current Pull.
        self._interrupted = False

    # -- what the subscription is --------------------------------------------------

    def _read_resource(self) -> Any:
        with translate_errors(f"read {self._where}"):
            found = self._clients.subscriber.get_subscription(
                subscription=self._subscription, retry=None, timeout=_CALL_TIMEOUT
            )
        resource = type(found).pb(found)
        with self._lock:
            self._resource = resource
        return resource

    @property
    def capabilities(self) -> Capabilities:
        """Read from the subscription on first use: its dead-letter policy decides whether
        delivery attempts are counted and dead letters can be sent.

        The portable consumer reads this when it is opened, so opening a consumer costs one
        GetSubscription (and raises NotFound for a missing subscription). If the server cannot
        be reached then, the capabilities a subscription may have are assumed (see
        :func:`subscription_capabilities`) and the consumer opens anyway.
        """
        resource = self._resource
        if resource is None:
            try:
                resource = self._read_resource()
            except NotFound:
                raise
            except QueueError as error:
                if not error.retryable:
                    raise
                resource = None
        return subscription_capabilities(resource)

    def _ack_deadline(self) -> float:
        resource = self._resource
        return float(resource.ack_deadline_seconds) if resource is not None else _MIN_ACK_DEADLINE

    # -- receiving -----------------------------------------------------------------

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        subscriber = self._clients.subscriber
        give_up_at = time.monotonic() + wait
        resource = self._resource
        counts_attempts = resource is None or bool(resource.dead_letter_policy.dead_letter_topic)
        ack_deadline = self._ack_deadline()
        while True:
            started = time.monotonic()  # the ack deadline runs from the server's answer, after this
            seconds = min(_MAX_PULL_SECONDS, max(_MIN_PULL_SECONDS, give_up_at - started))
            request = PullRequest.wrap(
                _PB_PULL(subscription=self._subscription, max_messages=max_messages)
            )
            with translate_errors(f"pull from {self._where}"):
                try:
                    response = subscriber.pull(request=request, retry=None, timeout=seconds)
                except api.DeadlineExceeded:
                    response = None  # nothing came within the wait
            if response is not None:
                received = type(response).pb(response).received_messages
                if received:
                    return [delivery_of(r, counts_attempts, started + ack_deadline) for r in received]
            # A server may end a Pull early with nothing; keep asking until the wait is over.
            if time.monotonic() >= give_up_at or self._interrupted:
                return []

    def interrupt_receives(self) -> None:
        self._interrupted = True

    # -- settling ------------------------------------------------------------------

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        ack_ids = [_ack_id(token) for token in tokens]
        with translate_errors(f"acknowledge on {self._where}"):
            self._clients.subscriber.acknowledge(
                subscription=self._subscription, ack_ids=ack_ids, retry=None, timeout=_CALL_TIMEOUT
            )
        return None

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        # A nack with a delay is an ack deadline that ends after the delay: the message is
        # redelivered then (0 = at once). Rounded up, so it never comes back early.
        outcomes = self._modify_deadlines(entries, f"nack on {self._where}")
        return None if not any(outcomes) else outcomes

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        asked_at = time.monotonic()
        outcomes = self._modify_deadlines(entries, f"extend leases on {self._where}")
        return [
            error if error is not None else asked_at + seconds
            for error, (_, seconds) in zip(outcomes, entries, strict=True)
        ]

    def _modify_deadlines(
        self, entries: Sequence[tuple[object, float]], what: str
    ) -> list[QueueError | None]:
        """ModifyAckDeadline, one request per distinct deadline; per-entry errors."""
        by_seconds: dict[int, list[int]] = defaultdict(list)
        for index, (_, seconds) in enumerate(entries):
            by_seconds[math.ceil(seconds)].append(index)
        outcomes: list[QueueError | None] = [None] * len(entries)
        for seconds, indexes in by_seconds.items():
            try:
                with translate_errors(what):
                    self._clients.subscriber.modify_ack_deadline(
                        subscription=self._subscription,
                        ack_ids=[_ack_id(entries[i][0]) for i in indexes],
                        ack_deadline_seconds=seconds,
                        retry=None,
                        timeout=_CALL_TIMEOUT,
                    )
            except QueueError as error:
                for index in indexes:
                    outcomes[index] = error
        return outcomes

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        """Publish each message to the subscription's dead-letter topic, with the reason in
        the attribute ``DEAD_LETTER_REASON``, then acknowledge it. A crash between the two
        leaves the message in both places (at least once), never in neither."""
        resource = self._resource if self._resource is not None else self._read_resource()
        dead_letter_topic = resource.dead_letter_policy.dead_letter_topic
        if not dead_letter_topic:
            error = Unsupported(f"{self._where} has no dead-letter policy")
            return [error] * len(entries)
        tokens = [token for token, _ in entries]
        copies = [_dead_letter_copy(token, reason, self._subscription) for token, reason in entries]
        request = PublishRequest.wrap(_PB_PUBLISH(topic=dead_letter_topic, messages=copies))
        with translate_errors(f"dead-letter from {self._where} to {dead_letter_topic}"):
            publish(self._clients.publisher, request, _CALL_TIMEOUT)
        return self.ack(tokens)

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return telemetry_attributes(self._clients.endpoint, self._names)

    def native_objects(self) -> Iterable[object]:
        return (self._clients.subscriber,)

    def close(self) -> None:
        self._clients.release()  # closes only clients made for this driver alone


def _ack_id(token: object) -> str:
    assert isinstance(token, Token)
    return token.ack_id


def _dead_letter_copy(token: object, reason: str, subscription: str) -> Any:
    """The message as received, with the reason, its id as a marker, and the
    ``CloudPubSubDeadLetterSource*`` attributes the service adds when it forwards a dead
    letter itself, so that a dead letter says the same whichever way it came
    (``cloudqueue.ops`` reads them). All but the reason are left out, in reverse order of
    worth, where they would take the copy over Pub/Sub's 100 attributes."""
    assert isinstance(token, Token)
    message = token.message
    copy: Any = type(message)()
    copy.data = message.data
    copy.attributes.update(message.attributes)
    copy.attributes[DEAD_LETTER_REASON] = reason
    copy.ordering_key = message.ordering_key
    _, project, _, subscription_id = subscription.split("/")
    source = {
        ORIGINAL_ID_MARKER: message.message_id,
        SOURCE_DELIVERY_COUNT: str(token.delivery_attempt or ""),
        SOURCE_SUBSCRIPTION: subscription_id,
        SOURCE_PROJECT: project,
        SOURCE_PUBLISH_TIME: message.publish_time.ToJsonString(),
    }
    for name, value in source.items():
        if value and len(copy.attributes) < LIMITS.max_attributes:
            copy.attributes[name] = value
    return copy

