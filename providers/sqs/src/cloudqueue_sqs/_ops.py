"""Operations hooks on SQS: queue statistics, what a dead letter says, where it came from.

Statistics are GetQueueAttributes' ``ApproximateNumberOf*`` counts. AWS calls them
approximate (a distributed count) and says they may need at least a minute after
producers stop sending to become consistent, so :class:`QueueStats` says ``exact=False``
and states no tighter bound. The age of the oldest message and send/receive totals are
CloudWatch metrics only, so they are None.

A dead letter reaches the dead-letter queue in one of two ways:

* moved by SQS under the source's redrive policy: the same message (same id, and
  ``ApproximateReceiveCount`` keeps counting, as on AWS and LocalStack), with the system
  attribute ``DeadLetterQueueSourceArn`` naming the source queue;
* sent as a copy by :meth:`SqsSubscription.dead_letter` (``message.dead_letter(reason)``):
  a new message with the reason in ``dead_letter_reason`` and, where the 10-attribute
  budget leaves room, the original id and receive count in the markers of :mod:`._codec`.
"""

from __future__ import annotations

import json
from typing import Any

from cloudqueue.driver import DeadLetterFacts, Delivery, QueueStats, Url
from cloudqueue.errors import InvalidArgument, QueueError
from cloudqueue.wire import DEAD_LETTER_REASON, RESERVED_PREFIX

from . import _codec
from ._codec import ORIGINAL_ID_MARKER, RECEIVE_COUNT_MARKER
from ._queues import Queue, QueueRegistry, sqs_call

__all__ = ["dead_letter_facts", "redrive_source", "stats"]

_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
#: ListDeadLetterSourceQueues' largest page.
_MAX_RESULTS = 1000


def _counts(queue: Queue, extra: tuple[str, ...] = ()) -> dict[str, str]:
    # Read afresh every time: Queue.attributes() is a cache of the settings, not of counts.
    with sqs_call(f"reading the message counts of SQS queue {queue.name!r}"):
        answer = queue.client.get_queue_attributes(
            QueueUrl=queue.url(), AttributeNames=[*_COUNTS, *extra]
        )
    return dict(answer.get("Attributes") or {})


def stats(registry: QueueRegistry, url: Url) -> QueueStats:
    queue = registry.queue(url)
    counts = _counts(queue, ("RedrivePolicy",))
    return QueueStats(
        available=int(counts["ApproximateNumberOfMessages"]),
        in_flight=int(counts["ApproximateNumberOfMessagesNotVisible"]),
        delayed=int(counts["ApproximateNumberOfMessagesDelayed"]),
        dead_letters=_dead_letters(registry, url, counts.get("RedrivePolicy")),
        oldest_age=None,  # ApproximateAgeOfOldestMessage is a CloudWatch metric only
        exact=False,
    )


def _dead_letters(registry: QueueRegistry, url: Url, policy: str | None) -> int | None:
    """Everything in the redrive target: waiting, being looked at or redriven (in flight),
    and delayed (a delay queue as target). None without a redrive policy: the queue has no
    dead-letter queue to count."""
    target = _arn_name(json.loads(policy).get("deadLetterTargetArn")) if policy else None
    if target is None:
        return None
    counts = _counts(registry.queue(url, target))
    return sum(int(counts[name]) for name in _COUNTS)


def _arn_name(arn: object) -> str | None:
    """The queue name at the end of ``arn:aws:sqs:region:account:name``."""
    if not arn:
        return None
    return str(arn).rsplit(":", 1)[-1] or None


def dead_letter_facts(registry: QueueRegistry, url: Url, delivery: Delivery) -> DeadLetterFacts:
    raw: dict[str, Any] = delivery.native if isinstance(delivery.native, dict) else {}
    system = raw.get("Attributes") or {}
    markers = _codec.decode_attributes(raw.get("MessageAttributes"))
    attributes = {
        name: value for name, value in delivery.attributes.items()
        if name != DEAD_LETTER_REASON and not name.startswith(RESERVED_PREFIX)
    }
    reason = delivery.attributes.get(DEAD_LETTER_REASON)
    if ORIGINAL_ID_MARKER in markers or RECEIVE_COUNT_MARKER in markers:
        # A copy sent by dead_letter(): the markers say what the source said.
        count = markers.get(RECEIVE_COUNT_MARKER)
        return DeadLetterFacts(
            attributes=attributes,
            reason=reason,
            delivery_count=int(count) if count and count.isdigit() else None,
            original_id=markers.get(ORIGINAL_ID_MARKER),
        )
    source_arn = system.get("DeadLetterQueueSourceArn")
    if source_arn is None:
        return DeadLetterFacts(attributes=attributes, reason=reason)
    return DeadLetterFacts(
        attributes=attributes,
        reason=reason,
        delivery_count=_moved_receive_count(registry, url, system, source_arn),
        source=str(source_arn),
    )


def _moved_receive_count(
    registry: QueueRegistry, url: Url, system: dict[str, str], source_arn: str
) -> int | None:
    """Receives at the source of a message SQS moved under its redrive policy.

    SQS moves a message on the receive that would exceed ``maxReceiveCount``, and keeps
    counting receives in the dead-letter queue: this receive is one of them, and so is
    every earlier one there (a receive-and-release peek, an interrupted redrive). So the
    source's count is at most ``ApproximateReceiveCount - 1`` and, unless the policy was
    changed since, exactly ``maxReceiveCount``: the smaller of the two.
    """
    received = system.get("ApproximateReceiveCount")
    bound = int(received) - 1 if received and received.isdigit() else None
    source = _arn_name(source_arn)
    limit: int | None = None
    if source is not None:
        try:
            policy = registry.queue(url, source).attributes().get("RedrivePolicy")
        except QueueError:
            policy = None  # the source is gone or unreadable: the receive count alone
        if policy:
            value = json.loads(policy).get("maxReceiveCount")
            limit = int(value) if str(value).isdigit() else None
    known = [count for count in (bound, limit) if count is not None]
    return min(known) if known else None


def redrive_source(registry: QueueRegistry, url: Url) -> Url:
    queue = registry.queue(url)
    sources = _dead_letter_sources(queue)
    if len(sources) == 1:
        return url.replace(host=sources[0], path="")
    if not sources:
        raise InvalidArgument(
            f"SQS queue {queue.name!r} is not a dead-letter queue of any queue (no queue's "
            "redrive policy names it): pass to= naming where its messages should go"
        )
    raise InvalidArgument(
        f"SQS queue {queue.name!r} is the dead-letter queue of {len(sources)} queues "
        f"({', '.join(sources)}): pass to= naming the one to redrive to"
    )


def _dead_letter_sources(queue: Queue) -> list[str]:
    names: list[str] = []
    request: dict[str, Any] = {"QueueUrl": queue.url(), "MaxResults": _MAX_RESULTS}
    while True:
        with sqs_call(f"listing the source queues of SQS queue {queue.name!r}"):
            answer = queue.client.list_dead_letter_source_queues(**request)
        names.extend(str(found).rsplit("/", 1)[-1] for found in answer.get("queueUrls") or ())
        token = answer.get("NextToken")
        if not token:
            return sorted(names)
        request["NextToken"] = token
