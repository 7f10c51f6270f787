"""The SNS topic driver (``PublishBatch``) and the driver of one SNS subscription's queue.

Publishing uses the SQS codec unchanged (raw delivery hands body and attributes to the
subscribed queues as they were published), plus a fresh id in
:data:`cloudqueue.wire.MESSAGE_ID_ATTRIBUTE`: the queue's copy gets an SQS message id of
its own, and the id ``send`` returns must be the one the consumer sees. The SNS
MessageId is logged at DEBUG.

A subscription is an SQS queue, read by the SQS driver. A message that reached it
without raw delivery (a subscription someone made by hand) is an SNS notification
envelope: it is unwrapped when the SQS message carries no attributes of its own and the
envelope names this subscription's topic, so a raw body that merely looks like an
envelope is left alone as far as can be told.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from cloudqueue import wire
from cloudqueue.driver import Capabilities, Message, TopicDriver
from cloudqueue.errors import FailedPrecondition, QueueError

from . import _codec
from ._driver import LIMITS, Content, SqsSubscription, capabilities_for
from ._errors import entry_error
from ._queues import Queue, QueueRegistry, sqs_call
from ._topics import Topic, TopicRegistry

__all__ = [
    "SNS_LIMITS", "SnsSubscription", "SnsTopic", "subscription_capabilities",
    "topic_capabilities", "topic_telemetry",
]

log = logging.getLogger("cloudqueue.sns")

#: SNS's largest message: 256 KiB, body and attributes (names, types, values) together.
_MAX_MESSAGE = 262_144
#: SQS's 10 attributes (every subscribed queue must take the message) minus the body
#: encoding marker, the id and the slot kept for a dead letter's reason. Trace context
#: counts against these, as on SQS.
USER_ATTRIBUTES = 7

SNS_LIMITS = dataclasses.replace(
    LIMITS,
    max_message_bytes=_MAX_MESSAGE,
    # PublishBatch: 10 entries, 256 KiB in all.
    max_send_batch_bytes=_MAX_MESSAGE,
    max_attributes=USER_ATTRIBUTES,
    max_attribute_value_bytes=_MAX_MESSAGE,
    max_delay=None,  # SNS cannot delay a message
)
_FIFO_LIMITS = dataclasses.replace(SNS_LIMITS, reserved_key_prefixes=(_codec.MADE_UP_PREFIX,))


def topic_capabilities(fifo: bool) -> Capabilities:
    return Capabilities(
        limits=_FIFO_LIMITS if fifo else SNS_LIMITS, ordering=fifo, deduplication=fifo,
        delayed_delivery=False, dead_letter=True, delivery_attempt=True, nack_delay=True,
        lease_extension=True, fan_out=True, implicit_create=False, durable=True, filters=True,
    )


def subscription_capabilities(fifo: bool) -> Capabilities:
    """The backing queue's (receiving and settling are SQS's), as part of a topic."""
    queue = capabilities_for(fifo)
    limits = dataclasses.replace(queue.limits, max_attributes=USER_ATTRIBUTES, max_delay=None)
    return dataclasses.replace(
        queue, limits=limits, delayed_delivery=False, fan_out=True, filters=True
    )


class SnsTopic(TopicDriver):
    def __init__(self, topic: Topic, *, owned: TopicRegistry | None = None) -> None:
        self._topic = topic
        # The registry made for the user's SqsSdk: closing it closes the clients built
        # for this driver (never the user's own). None: the provider's shared one.
        self._owned = owned
        self.capabilities_ = topic_capabilities(topic.fifo)

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_

    def measure(self, message: Message) -> int:
        return _codec.measure_published(message)

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        topic = self._topic
        arn = topic.arn()
        content_based = topic.fifo and topic.content_based_dedup
        results: list[str | QueueError] = [
            FailedPrecondition("SNS answered for no entry")
        ] * len(messages)
        if not messages:
            return results
        ids = [uuid.uuid4().hex for _ in messages]
        entries = [
            _codec.encode_publish_entry(
                str(index), message, fifo=topic.fifo, content_based_dedup=content_based,
                message_id=ids[index],
            )
            for index, message in enumerate(messages)
        ]
        with sqs_call(f"publishing to SNS topic {topic.name!r}"):
            answer = topic.client.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)
        for success in answer.get("Successful") or ():
            index = int(success["Id"])
            results[index] = ids[index]
            log.debug("published %s to SNS topic %r as SNS message %s",
                      ids[index], topic.name, success.get("MessageId"))
        for failure in answer.get("Failed") or ():
            results[int(failure["Id"])] = entry_error("publishing", failure)
        return results

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return topic_telemetry(self._topic)

    def native_objects(self) -> Iterable[object]:
        return (self._topic.client,)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close_all()

    def __repr__(self) -> str:
        return f"<SnsTopic {self._topic.name}>"


def topic_telemetry(topic: Topic) -> dict[str, str | int]:
    """``messaging.system`` as the OpenTelemetry conventions spell SNS (``aws.sns``), the
    topic as destination, the client's address and ``aws.sns.topic.arn`` when known."""
    attributes: dict[str, str | int] = {
        "messaging.system": "aws.sns", "messaging.destination.name": topic.name,
    }
    try:
        endpoint = urlsplit(str(topic.client.meta.endpoint_url or ""))
        if endpoint.hostname:  # hostname and port only: never a user:password@
            attributes["server.address"] = endpoint.hostname
            attributes["server.port"] = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        attributes["aws.sns.topic.arn"] = topic.arn()
    except QueueError:
        pass  # no client or account yet: the first publish reports the problem
    return attributes


class SnsSubscription(SqsSubscription):
    """The SQS driver on a subscription's queue, unwrapping SNS envelopes."""

    def __init__(
        self, queue: Queue, topic_name: str, *, owned: QueueRegistry | None = None
    ) -> None:
        super().__init__(queue, owned=owned)
        self.capabilities_ = subscription_capabilities(queue.fifo)
        self._topic_suffix = ":" + topic_name

    def _content(self, raw: dict[str, Any]) -> Content:
        content = super()._content(raw)
        if content.attributes:
            return content  # raw delivery (ours always carries the id attribute)
        try:
            note = wire.sns_notification(content.text)
        except wire.WireDecodeError as error:
            log.warning("an SNS envelope cannot be read (%s); handing over the raw text", error)
            return content
        if note is None or not note.topic_arn.endswith(self._topic_suffix):
            return content
        return Content(
            native_id=note.message_id,
            text=note.message,
            attributes=dict(note.attributes),
            enqueued_at=note.timestamp or content.enqueued_at,
        )

    def __repr__(self) -> str:
        return f"<SnsSubscription {self._queue.name}>"
