"""The topic driver: one Publish request per batch the portable layer hands over."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

from cloudqueue.driver import Capabilities, Message, TopicDriver
from cloudqueue.errors import QueueError
from google.pubsub_v1 import PublishRequest

from ._capabilities import TOPIC_CAPABILITIES
from ._clients import Clients, publish
from ._errors import translate_errors
from ._names import Names
from ._tracing import telemetry_attributes
from ._wire import measure, to_pubsub

__all__ = ["PubSubTopic"]

_PB_REQUEST: Any = PublishRequest.pb()
#: A Publish call that has not answered in this long is abandoned (and retried by the
#: portable layer); generous, because 10 MB requests take a while.
PUBLISH_TIMEOUT = 60.0


class PubSubTopic(TopicDriver):
    """Publishes to one topic with the GAPIC ``PublisherClient``.

    The client's own batching publisher (``google.cloud.pubsub_v1.PublisherClient.publish``)
    is deliberately not used: the portable layer already coalesces sends into batches of up to
    1,000 messages / 10 MB, so a second batching stage would only add latency timers and a
    thread. For the same reason no ordering key is ever "paused" in the client (its sequencer,
    which needs ``resume_publish`` after a failure, is not involved): a failed batch is simply
    reported, and the portable layer retries it before anything later of this call is sent.
    """

    def __init__(self, clients: Clients, names: Names) -> None:
        self._clients = clients
        self._names = names
        self._topic = names.topic
        self._what = f"publish to {names.describe()}"

    @property
    def capabilities(self) -> Capabilities:
        return TOPIC_CAPABILITIES

    def measure(self, message: Message) -> int:
        return measure(message)

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        publisher = self._clients.publisher
        ids: list[str | QueueError] = []
        # Pub/Sub takes one ordering key per request: consecutive messages of one key (or of
        # none) share a request, and requests go out in the batch's order, one at a time, so
        # each key's messages reach the server in the order they were given.
        for _, run in groupby(messages, key=lambda message: message.ordering_key):
            request = PublishRequest.wrap(
                _PB_REQUEST(topic=self._topic, messages=[to_pubsub(m) for m in run])
            )
            try:
                with translate_errors(self._what):
                    response = publish(publisher, request, PUBLISH_TIMEOUT)
            except QueueError as error:
                if not ids:
                    raise  # nothing was sent: the whole call failed
                # Earlier requests went through: report them sent, and this one and every
                # later one failed, so that only those are sent again.
                return ids + [error] * (len(messages) - len(ids))
            ids.extend(_message_ids(response))
        return ids

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return telemetry_attributes(self._clients.endpoint, self._names)

    def native_objects(self) -> Iterable[object]:
        return (self._clients.publisher,)

    def close(self) -> None:
        self._clients.release()  # closes only clients made for this driver alone


def _message_ids(response: Any) -> list[str]:
    return list(type(response).pb(response).message_ids)
