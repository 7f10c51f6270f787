"""How SDK failures become portable errors, without a broker: the translation table, and
what a send that failed part-way reports (issue 11, item 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudqueue
import pytest
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusConnectionError,
    ServiceBusError,
)
from cloudqueue.errors import ErrorCode, QueueError, translated

from cloudqueue_azure_servicebus._admin import EntityInfo
from cloudqueue_azure_servicebus._errors import ERRORS
from cloudqueue_azure_servicebus._names import Target
from cloudqueue_azure_servicebus._sending import ServiceBusTopic


@pytest.mark.parametrize(
    ("wrapped", "code"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), ErrorCode.UNAVAILABLE),
        (ConnectionRefusedError(111, "Connection refused"), ErrorCode.UNAVAILABLE),
        (TimeoutError("timed out"), ErrorCode.DEADLINE_EXCEEDED),
        (ServiceBusConnectionError(message="inner"), ErrorCode.UNAVAILABLE),
        (ValueError("something else"), ErrorCode.UNKNOWN),
        (None, ErrorCode.UNKNOWN),
    ],
)
def test_a_plain_service_bus_error_is_translated_by_the_exception_it_wraps(
    wrapped: BaseException | None, code: ErrorCode
) -> None:
    # The SDK reports a transport failure it has no class for as "Handler failed".
    error = translated(ServiceBusError("Handler failed", error=wrapped), ERRORS, "sending")
    assert error.code is code
    assert error.retryable is (code in (ErrorCode.UNAVAILABLE, ErrorCode.DEADLINE_EXCEEDED))


class _Batch:
    """Holds up to ``room`` messages, like ServiceBusMessageBatch's size check."""

    max_size_in_bytes = 1024

    def __init__(self, room: int) -> None:
        self.room = room
        self.messages: list[Any] = []

    def add_message(self, message: Any) -> None:
        if len(self.messages) >= self.room:
            raise MessageSizeExceededError(message="the batch is full")
        self.messages.append(message)


class _Sender:
    """A stand-in SDK sender whose calls fail as told."""

    def __init__(self, room: int, send: Callable[[int], None],
                 create: Callable[[int], None] = lambda n: None) -> None:
        self.room, self.send, self.create = room, send, create
        self.sends = self.creates = 0
        self.closed = False

    def create_message_batch(self) -> _Batch:
        self.creates += 1
        self.create(self.creates)
        return _Batch(self.room)

    def send_messages(self, batch: _Batch) -> None:
        self.sends += 1
        self.send(self.sends)

    def close(self) -> None:
        self.closed = True


class _Catalog:
    def __init__(self, sender: _Sender) -> None:
        self.sender = sender
        self.clients = self

    @property
    def client(self) -> _Catalog:
        return self

    def get_queue_sender(self, queue_name: str) -> _Sender:
        return self.sender

    def info(self, target: Target) -> EntityInfo:
        return EntityInfo(False, False, False, 256 * 1024, 30.0)


def _topic(sender: _Sender) -> ServiceBusTopic:
    return ServiceBusTopic(_Catalog(sender), Target("local", "q"))  # type: ignore[arg-type]


def _fail(exc: Exception, on: int = 1) -> Callable[[int], None]:
    def call(n: int) -> None:
        if n == on:
            raise exc

    return call


def _messages(count: int) -> list[cloudqueue.Message]:
    return [cloudqueue.Message(f"m{n}") for n in range(count)]


def test_opening_the_sender_link_is_translated_and_the_sender_replaced() -> None:
    sender = _Sender(10, send=lambda n: None, create=_fail(ServiceBusConnectionError(message="reset")))
    topic = _topic(sender)
    with pytest.raises(QueueError) as info:
        topic.send_batch(_messages(3))
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.retryable
    assert sender.closed  # dropped: the next call opens a new sender
    assert len(topic.send_batch(_messages(3))) == 3


@pytest.mark.parametrize(
    "failure",
    [ServiceBusConnectionError(message="reset while sending"),
     ServiceBusError("Handler failed", error=RuntimeError("unexpected"))],
)
def test_a_send_that_may_have_reached_the_broker_is_retryable_and_says_so(failure: Exception) -> None:
    sender = _Sender(10, send=_fail(failure))
    with pytest.raises(QueueError) as info:
        _topic(sender).send_batch(_messages(3))
    assert info.value.retryable
    assert "may have been delivered" in str(info.value)
    assert info.value.__cause__ is failure


def test_a_send_the_service_refused_is_reported_as_it_was() -> None:
    refusal = MessagingEntityNotFoundError(message="no such queue")
    with pytest.raises(QueueError) as info:
        _topic(_Sender(10, send=_fail(refusal))).send_batch(_messages(3))
    assert info.value.code is ErrorCode.NOT_FOUND and not info.value.retryable
    assert "may have been delivered" not in str(info.value)


def test_when_a_later_batch_fails_the_earlier_ones_are_reported_sent() -> None:
    # Two messages fit a batch: the first batch goes out, the second fails on the wire.
    sender = _Sender(2, send=_fail(ServiceBusConnectionError(message="reset"), on=2))
    results = _topic(sender).send_batch(_messages(3))
    assert [type(result) for result in results[:2]] == [str, str]
    assert isinstance(results[2], QueueError) and results[2].retryable
    assert sender.closed  # the failed sender is replaced for the next call
