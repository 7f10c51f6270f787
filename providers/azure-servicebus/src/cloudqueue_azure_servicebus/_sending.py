"""The topic driver: sends to a queue or topic through one reused sender.

Every SDK call, opening the sender's link included, goes through the error table.
A failure drops the sender (see :mod:`._handlers`), so the next call opens a new
one on a new connection. A send that fails other than by the service's definite
refusal has an unknown outcome (the connection may have dropped after the batch
reached the broker): its messages get a retryable error saying they may have been
delivered, so the portable layer sends them again (duplicates, never loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from azure.servicebus import ServiceBusMessageBatch, ServiceBusSender
from azure.servicebus.amqp import AmqpAnnotatedMessage
from azure.servicebus.exceptions import MessageSizeExceededError
from cloudqueue.driver import Capabilities, Message, TopicDriver
from cloudqueue.errors import ErrorCode, MessageTooLarge, QueueError, error_for_code, translate, translated

from ._admin import EntityCatalog, capabilities_for
from ._errors import ERRORS
from ._handlers import Handler
from ._names import Target
from ._tracing import telemetry_attributes
from ._wire import DEDUPLICATION_ID_PROPERTY, message_id_of, outgoing

__all__ = ["ServiceBusTopic", "open_sender", "outcome_unknown"]

# What the AMQP encoding adds to a message beyond body and property text: header,
# message id, session id, annotations, and a few bytes per property. Counted by
# measure() so that a message the portable layer admits also fits on the wire.
_FIXED_OVERHEAD = 512
_PER_PROPERTY_OVERHEAD = 16

#: Codes by which the service (or the SDK, before anything went out) refuses a send
#: for certain: the messages were not delivered (a quota refusal stays retryable).
#: Any other failure of a send call leaves its outcome unknown.
_REFUSED = frozenset({
    ErrorCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION,
    ErrorCode.PERMISSION_DENIED,
    ErrorCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNSUPPORTED,
})


def open_sender(catalog: EntityCatalog, target: Target) -> ServiceBusSender:
    client = catalog.clients.client
    if catalog.info(target).is_topic:
        return client.get_topic_sender(topic_name=target.entity)
    return client.get_queue_sender(queue_name=target.entity)


class ServiceBusTopic(TopicDriver):
    def __init__(
        self, catalog: EntityCatalog, target: Target, on_close: Callable[[], None] | None = None
    ) -> None:
        self._catalog = catalog
        self._target = target
        self._on_close = on_close
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
        if message.deduplication_id:  # sent twice: as MessageId and as a property (see _wire)
            size += (
                len(DEDUPLICATION_ID_PROPERTY) + len(message.deduplication_id.encode())
                + _PER_PROPERTY_OVERHEAD
            )
        return size

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        sessions = self._catalog.info(self._target).requires_session
        native = [outgoing(message, sessions) for message in messages]
        results: list[str | QueueError | None] = [None] * len(native)
        where = f"sending to Service Bus {self._target.describe()}"
        try:
            # The sender's link opens on first use (use() or create_message_batch()),
            # inside the translation too; any failure drops the sender.
            with translate(ERRORS, where), self._sender.use() as sender:
                self._send_packed(sender, native, results, where)
        except QueueError as error:
            if all(result is None for result in results):
                raise  # nothing went out and nothing was decided: the whole call failed
            # Earlier batches went out: a partial failure. The rest share the error
            # (retryable unless the service refused for certain).
            return [error if result is None else result for result in results]
        return cast(list[str | QueueError], results)  # every slot is filled

    def _send_packed(self, sender: ServiceBusSender, native: list[AmqpAnnotatedMessage],
                     results: list[str | QueueError | None], where: str) -> None:
        """Pack into size-checked batches and send them in order, filling ``results``.
        The portable layer's split uses measure(), so more than one batch is rare (only
        when the wire form is bigger). Raises at the first failed SDK call."""
        batch = sender.create_message_batch()
        members: list[int] = []
        for index, message in enumerate(native):
            if _fits(batch, message):
                members.append(index)
                continue
            if members:
                self._flush(sender, batch, members, native, results, where)
                batch, members = sender.create_message_batch(), []
                if _fits(batch, message):
                    members.append(index)
                    continue
            results[index] = self._too_large(message, batch.max_size_in_bytes)
        if members:
            self._flush(sender, batch, members, native, results, where)

    @staticmethod
    def _flush(sender: ServiceBusSender, batch: ServiceBusMessageBatch, members: list[int],
               native: list[AmqpAnnotatedMessage], results: list[str | QueueError | None],
               where: str) -> None:
        try:
            sender.send_messages(batch)
        except Exception as exc:  # the SDK's own; cancellation passes through
            raise outcome_unknown(translated(exc, ERRORS, where)) from exc
        for index in members:
            results[index] = message_id_of(native[index])

    @staticmethod
    def _too_large(message: AmqpAnnotatedMessage, limit: int) -> QueueError:
        return MessageTooLarge(
            f"message {message_id_of(message)} does not fit the entity's limit of {limit} bytes"
        )

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        client = self._catalog.clients.client  # made without a network call
        return telemetry_attributes(client.fully_qualified_namespace, self._target)

    def native_objects(self) -> Iterable[object]:
        sender = self._sender.current
        client = self._catalog.clients.client
        return (sender, client) if sender is not None else (client,)

    def close(self) -> None:
        self._sender.drop()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


def _fits(batch: ServiceBusMessageBatch, message: AmqpAnnotatedMessage) -> bool:
    try:
        batch.add_message(message)
    except MessageSizeExceededError:
        return False
    return True


def outcome_unknown(error: QueueError) -> QueueError:
    """``error`` of a send call that may have reached the broker (anything but a
    definite refusal): retryable, and saying the messages may have been delivered."""
    if error.code in _REFUSED:
        return error
    unknown = error_for_code(
        error.code,
        f"{error} (the outcome is unknown: the messages may have been delivered; "
        "sending them again may duplicate them)",
    )
    unknown.retryable = True
    unknown.__cause__ = error.__cause__
    return unknown
