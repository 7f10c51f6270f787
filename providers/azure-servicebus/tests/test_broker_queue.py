"""Queues through the official sync SDK: send, receive, settle, locks, scheduling, limits."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusError

from cloudqueue_azure_servicebus.testing import ServiceBusBroker


def receive_all(receiver: Any, count: int, deadline_s: float = 5.0) -> list[Any]:
    """Receive until ``count`` messages arrived or the deadline passed."""
    out: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(receiver.receive_messages(max_message_count=count - len(out), max_wait_time=1))
    return out


def test_send_receive_complete(client: ServiceBusClient, broker: ServiceBusBroker, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages(ServiceBusMessage(
            b"hello", application_properties={"k": "v"}, message_id="m-1", content_type="text/plain",
            subject="greeting", correlation_id="c-1",
        ))
        [msg] = receive_all(receiver, 1)
        assert b"".join(msg.body) == b"hello"
        assert msg.message_id == "m-1"
        assert msg.content_type == "text/plain"
        assert msg.subject == "greeting"
        assert msg.correlation_id == "c-1"
        assert msg.application_properties == {b"k": b"v"}
        assert msg.delivery_count == 0
        assert msg.sequence_number == 1
        assert msg.locked_until_utc > datetime.now(UTC)
        assert msg.enqueued_time_utc is not None
        receiver.complete_message(msg)
    assert broker.message_counts(queue)["total"] == 0


def test_batch_send_keeps_order_and_bodies(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue, prefetch_count=50) as rcv:
        batch = sender.create_message_batch()
        for i in range(30):
            batch.add_message(ServiceBusMessage(f"m{i}", application_properties={"i": i}))
        sender.send_messages(batch)
        sender.send_messages([ServiceBusMessage("list-a"), ServiceBusMessage("list-b")])
        got = receive_all(rcv, 32)
        assert [str(m) for m in got] == [f"m{i}" for i in range(30)] + ["list-a", "list-b"]
        assert [m.sequence_number for m in got] == list(range(1, 33))
        for m in got:
            rcv.complete_message(m)


def test_abandon_redelivers_with_delivery_count(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages(ServiceBusMessage("again"))
        [first] = receive_all(receiver, 1)
        receiver.abandon_message(first)
        [second] = receive_all(receiver, 1)
        assert second.sequence_number == first.sequence_number
        assert second.delivery_count == 1
        receiver.complete_message(second)


def test_defer_and_receive_deferred(client: ServiceBusClient, broker: ServiceBusBroker, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages([ServiceBusMessage("later"), ServiceBusMessage("now")])
        first, second = receive_all(receiver, 2)
        receiver.defer_message(first)
        receiver.complete_message(second)
        assert receiver.receive_messages(max_wait_time=0.5) == []
        [deferred] = receiver.receive_deferred_messages([first.sequence_number])
        assert str(deferred) == "later"
        receiver.complete_message(deferred)
    assert broker.message_counts(queue)["total"] == 0


def test_dead_letter_with_reason_and_read_dlq(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages(ServiceBusMessage("poison"))
        [msg] = receive_all(receiver, 1)
        receiver.dead_letter_message(msg, reason="bad", error_description="could not parse")
    with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_all(dlq, 1)
        assert str(dead) == "poison"
        assert dead.dead_letter_reason == "bad"
        assert dead.dead_letter_error_description == "could not parse"
        assert dead.dead_letter_source == queue
        dlq.complete_message(dead)


def test_lock_expiry_redelivers_and_renew_extends(client: ServiceBusClient, make_queue: Any) -> None:
    queue = make_queue(lock_duration=1.0)
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages([ServiceBusMessage("expire"), ServiceBusMessage("renew")])
        expire, renew = receive_all(receiver, 2)
        before = renew.locked_until_utc
        time.sleep(0.5)
        new_until = receiver.renew_message_lock(renew)
        assert new_until > before
        time.sleep(0.7)  # past the first lock, not past the renewed one
        [again] = receive_all(receiver, 1)
        assert again.sequence_number == expire.sequence_number
        assert again.delivery_count == 1
        receiver.complete_message(renew)
        receiver.complete_message(again)


def test_schedule_and_cancel(client: ServiceBusClient, broker: ServiceBusBroker, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        far = datetime.now(UTC) + timedelta(hours=1)
        [seq_soon] = sender.schedule_messages(ServiceBusMessage("soon"), soon)
        [seq_far] = sender.schedule_messages(ServiceBusMessage("far"), far)
        assert broker.message_counts(queue)["scheduled"] == 2
        sender.cancel_scheduled_messages(seq_far)
        assert broker.message_counts(queue)["scheduled"] == 1
        assert receiver.receive_messages(max_wait_time=0.3) == []
        [msg] = receive_all(receiver, 1, deadline_s=5)
        assert str(msg) == "soon"
        assert msg.sequence_number == seq_soon
        assert datetime.now(UTC) >= soon - timedelta(milliseconds=50)
        receiver.complete_message(msg)


def test_peek_does_not_lock(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages([ServiceBusMessage(f"p{i}") for i in range(3)])
        peeked = receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["p0", "p1", "p2"]
        assert receiver.peek_messages(max_message_count=2, sequence_number=2)[0].sequence_number == 2
        got = receive_all(receiver, 3)
        assert len(got) == 3
        for m in got:
            receiver.complete_message(m)
        assert receiver.peek_messages(max_message_count=10) == []


def test_receive_and_delete(client: ServiceBusClient, broker: ServiceBusBroker, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
    with client.get_queue_receiver(queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as rcv:
        got = receive_all(rcv, 2)
        assert sorted(str(m) for m in got) == ["a", "b"]
    assert broker.message_counts(queue)["total"] == 0


def test_max_delivery_count_dead_letters(client: ServiceBusClient, make_queue: Any) -> None:
    queue = make_queue(max_delivery_count=2)
    with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
        sender.send_messages(ServiceBusMessage("flaky"))
        for _ in range(2):
            [msg] = receive_all(receiver, 1)
            receiver.abandon_message(msg)
        assert receiver.receive_messages(max_wait_time=0.3) == []
    with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_all(dlq, 1)
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.delivery_count == 2
        dlq.complete_message(dead)


def test_duplicate_detection(client: ServiceBusClient, broker: ServiceBusBroker, make_queue: Any) -> None:
    queue = make_queue(requires_duplicate_detection=True, duplicate_detection_history_time_window=60)
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("one", message_id="same"))
        sender.send_messages(ServiceBusMessage("two", message_id="same"))
        sender.send_messages(ServiceBusMessage("three", message_id="other"))
    assert broker.message_counts(queue)["total"] == 2


def test_ttl_drops_or_dead_letters(
    client: ServiceBusClient, broker: ServiceBusBroker, make_queue: Any
) -> None:
    dropping = make_queue()
    keeping = make_queue(dead_lettering_on_message_expiration=True)
    for queue in (dropping, keeping):
        with client.get_queue_sender(queue) as sender:
            # The SDK sends whole seconds: 1 s is the shortest TTL it can express.
            sender.send_messages(ServiceBusMessage("short", time_to_live=timedelta(seconds=1)))
            sender.send_messages(ServiceBusMessage("long"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        broker.message_counts(dropping)["total"] > 1 or broker.message_counts(keeping)["dead_letter"] < 1
    ):
        time.sleep(0.05)
    assert broker.message_counts(dropping) == {"active": 1, "scheduled": 0, "dead_letter": 0, "total": 1}
    assert broker.message_counts(keeping)["dead_letter"] == 1
    with client.get_queue_receiver(keeping, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_all(dlq, 1)
        assert str(dead) == "short"
        assert dead.dead_letter_reason == "TTLExpiredException"


def test_oversize_message_rejected(
    client: ServiceBusClient, broker: ServiceBusBroker, make_queue: Any
) -> None:
    queue = make_queue(max_message_size_in_kilobytes=64)
    with client.get_queue_sender(queue) as sender:
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * 70_000))
        sender.send_messages(ServiceBusMessage(b"x" * 60_000))
    assert broker.message_counts(queue)["total"] == 1


def test_unknown_entity_is_reported(client: ServiceBusClient) -> None:
    with pytest.raises(ServiceBusError), client.get_queue_sender(f"missing-{uuid.uuid4().hex}") as sender:
        sender.send_messages(ServiceBusMessage("x"))


def test_batches_with_prefetch_deliver_each_message_once(
    client: ServiceBusClient, broker: ServiceBusBroker, queue: str
) -> None:
    """2,000 messages in batches of 100, prefetch, complete: each exactly once. (The rate
    is measured by bench/bench_servicebus.py, not asserted: a timed assertion failed
    whenever the machine was busy.)"""
    total = 2000
    with client.get_queue_sender(queue) as sender, \
            client.get_queue_receiver(queue, prefetch_count=300) as rcv:
        for start in range(0, total, 100):
            batch = sender.create_message_batch()
            for i in range(start, start + 100):
                batch.add_message(ServiceBusMessage(f"{i}"))
            sender.send_messages(batch)
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(seen) < total and time.monotonic() < deadline:
            for msg in rcv.receive_messages(max_message_count=300, max_wait_time=1):
                seen.append(int(str(msg)))
                rcv.complete_message(msg)
    assert sorted(seen) == list(range(total))
    assert broker.message_counts(queue)["total"] == 0
