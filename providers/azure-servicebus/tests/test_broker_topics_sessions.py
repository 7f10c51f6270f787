"""Topics (fan-out) and sessions through the official sync SDK."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
)

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

_ids = itertools.count()


def receive_all(receiver: Any, count: int, deadline_s: float = 5.0) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(receiver.receive_messages(max_message_count=count - len(out), max_wait_time=1))
    return out


def test_topic_fans_out_to_every_subscription(client: ServiceBusClient, broker: ServiceBusBroker) -> None:
    topic = f"topic{next(_ids)}"
    broker.create_topic(topic)
    broker.create_subscription(topic, "a")
    broker.create_subscription(topic, "b", max_delivery_count=1)
    with client.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage("e1"), ServiceBusMessage("e2")])
    with client.get_subscription_receiver(topic, "a") as rcv_a:
        got = receive_all(rcv_a, 2)
        assert [str(m) for m in got] == ["e1", "e2"]
        for m in got:
            rcv_a.complete_message(m)
    with client.get_subscription_receiver(topic, "b") as rcv_b:
        got = receive_all(rcv_b, 2)
        assert [str(m) for m in got] == ["e1", "e2"]
        rcv_b.abandon_message(got[0])  # max_delivery_count=1: straight to the DLQ
        rcv_b.complete_message(got[1])
    dlq_path = f"{topic}/Subscriptions/b"
    assert broker.message_counts(dlq_path)["dead_letter"] == 1
    with client.get_subscription_receiver(topic, "b", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_all(dlq, 1)
        assert str(dead) == "e1"
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        dlq.complete_message(dead)


@pytest.fixture
def session_queue(make_queue: Any) -> str:
    name: str = make_queue(requires_session=True, lock_duration=2.0)
    return name


def test_sessionful_queue_rejects_message_without_session(
    client: ServiceBusClient, session_queue: str
) -> None:
    with client.get_queue_sender(session_queue) as sender, pytest.raises(ServiceBusError):
        sender.send_messages(ServiceBusMessage("no session"))


def test_sessions_in_order_next_available_and_state(client: ServiceBusClient, session_queue: str) -> None:
    with client.get_queue_sender(session_queue) as sender:
        batch = sender.create_message_batch()
        for i in range(4):
            batch.add_message(ServiceBusMessage(f"a{i}", session_id="A"))
        sender.send_messages(batch)
        sender.send_messages([ServiceBusMessage(f"b{i}", session_id="B") for i in range(3)])

    with client.get_queue_receiver(session_queue, session_id="B") as rcv_b:
        assert rcv_b.session.session_id == "B"
        got = receive_all(rcv_b, 3)
        assert [str(m) for m in got] == ["b0", "b1", "b2"]
        assert all(m.session_id == "B" for m in got)
        for m in got:
            rcv_b.complete_message(m)
        rcv_b.session.set_state(b"checkpoint")
        assert rcv_b.session.get_state() == b"checkpoint"
        before = rcv_b.session.locked_until_utc
        assert before is not None
        time.sleep(0.3)
        assert rcv_b.session.renew_lock() > before

    with client.get_queue_receiver(session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as rcv:
        assert rcv.session.session_id == "A"  # B is empty, A has messages
        got = receive_all(rcv, 4)
        assert [str(m) for m in got] == [f"a{i}" for i in range(4)]
        for m in got:
            rcv.complete_message(m)


@pytest.fixture
def no_retry_client(broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    # The SDK retries both refusals below (they are retryable on the service), which would
    # turn a refusal into a wait for the first session lock to run out.
    with ServiceBusClient.from_connection_string(broker.connection_string, retry_total=0) as sb:
        yield sb


def test_locked_session_cannot_be_taken_twice(
    no_retry_client: ServiceBusClient, session_queue: str
) -> None:
    client = no_retry_client
    with client.get_queue_sender(session_queue) as sender:
        sender.send_messages(ServiceBusMessage("x", session_id="S"))
    with client.get_queue_receiver(session_queue, session_id="S") as first:
        second = client.get_queue_receiver(session_queue, session_id="S")
        with pytest.raises(SessionCannotBeLockedError), second:
            second.receive_messages(max_wait_time=1)
        [msg] = receive_all(first, 1)
        first.complete_message(msg)


def test_next_available_session_times_out_when_empty(
    no_retry_client: ServiceBusClient, session_queue: str
) -> None:
    receiver = no_retry_client.get_queue_receiver(
        session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
    )
    with pytest.raises(OperationTimeoutError), receiver:
        receiver.receive_messages(max_wait_time=1)
