"""The topic driver: sends to a queue or topic through one reused sender."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError
from cloudqueue.driver import Capabilities, Message, TopicDriver
from cloudqueue.errors import MessageTooLarge, QueueError, translate

from ._admin import EntityCatalog, capabilities_for
from ._errors import ERRORS
from ._handlers import Handler
from ._names import Target
from ._wire import outgoing

__all__ = ["ServiceBusTopic", "open_sender"]

# What the AMQP encoding adds to a message beyond body and property text: header,
# message id, session id, annotations, and a few bytes per property. Counted by
# measure() so that a message the portable layer admits also fits on the wire.
_FIXED_OVERHEAD = 512
_PER_PROPERTY_OVERHEAD = 16


def open_sender(catalog: EntityCatalog, target: Target) -> ServiceBusSender:
    client = catalog.clients.client
    if catalog.info(target).is_topic:
        return client.get_topic_sender(topic_name=target.entity)
    return client.get_queue_sender(queue_name=target.entity)


class ServiceBusTopic(TopicDriver):
    def __init__(self, catalog: EntityCatalog, target: Target) -> None:
        self._catalog = catalog
        self._target = target
        self._sender: Handler[ServiceBusSender] = Handler(lambda: open_sender(catalog, target))

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_for(self._target, self._catalog.info(self._target))

    def measure(self, message: Message) -> int:
        size = _FIXED_OVERHEAD + len(message.body)
        for name, value in message.attributes.items():
            size += len(name.encode()) + len(value.encode()) + _PER_PROPERTY_OVERHEAD
        for key in (message.ordering_key, message.deduplication_id):
            size += len(key.encode()) if key else 0
        return size

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        sessions = self._catalog.info(self._target).requires_session
        native = [outgoing(message, sessions) for message in messages]
        results: list[str | QueueError] = []
        where = f"sending to Service Bus {self._target.describe()}"
        with self._sender.use() as sender:
            # Pack into size-checked batches; the portable layer's split uses measure(),
            # so more than one batch is rare (only when the wire form is bigger).
            pending: list[ServiceBusMessage] = []
            batch = sender.create_message_batch()
            for message in native:
                try:
                    batch.add_message(message)
                    pending.append(message)
                    continue
                except MessageSizeExceededError:
                    if not pending:
                        results.append(self._too_large(message, batch.max_size_in_bytes))
                        continue
                self._flush(sender, batch, pending, results, where)
                batch = sender.create_message_batch()
                try:
                    batch.add_message(message)
                    pending = [message]
                except MessageSizeExceededError:
                    pending = []
                    results.append(self._too_large(message, batch.max_size_in_bytes))
            if pending:
                self._flush(sender, batch, pending, results, where)
        return results

    @staticmethod
    def _flush(sender: ServiceBusSender, batch: Any, pending: list[ServiceBusMessage],
               results: list[str | QueueError], where: str) -> None:
        try:
            with translate(ERRORS, where):
                sender.send_messages(batch)
        except QueueError as error:
            if not any(isinstance(result, str) for result in results):
                raise  # nothing went out: the whole call failed
            results.extend(error for _ in pending)  # earlier parts went out: partial failure
        else:
            results.extend(str(message.message_id) for message in pending)
        pending.clear()

    @staticmethod
    def _too_large(message: ServiceBusMessage, limit: int) -> QueueError:
        return MessageTooLarge(
            f"message {message.message_id} does not fit the entity's limit of {limit} bytes"
        )

    def native_objects(self) -> Iterable[object]:
        sender = self._sender.current
        client = self._catalog.clients.client
        return (sender, client) if sender is not None else (client,)

    def close(self) -> None:
        self._sender.drop()
