"""The driver's guard against the SDK's keep-alive race (``_frames.py``): the SDK still has
what the guard reaches into, the driver's receivers carry it, and the keep-alive still
releases, through it, a message that arrives between receive calls (else that message
would stay locked in the socket for the lock duration).

The race itself needs a loaded machine to show; docs/providers/azure-servicebus.md gives
the repro under load and its figures before and after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from cloudqueue._url import parse_url

from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._frames import serialise_frame_processing
from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus._receiving import ServiceBusSubscription
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

LOCK_SECONDS = 120.0  # a message held locked would not come back within the test


def _is_serialised(receiver: object) -> bool:
    listen = receiver._handler._connection.listen  # type: ignore[attr-defined]
    return bool(getattr(listen, "_cloudqueue_serialised", False))


def test_a_receiver_opened_with_prefetch_0_gets_one_listen_lock(client: ServiceBusClient, queue: str) -> None:
    with client.get_queue_receiver(queue, prefetch_count=0) as receiver:
        assert not _is_serialised(receiver)
        assert serialise_frame_processing(receiver)
        wrapped = receiver._handler._connection.listen
        assert serialise_frame_processing(receiver)  # once per connection, not nested
        assert receiver._handler._connection.listen is wrapped and _is_serialised(receiver)
        with client.get_queue_sender(queue) as sender:
            sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(3)])
        got = []
        for _ in range(20):
            got += receiver.receive_messages(max_message_count=3 - len(got), max_wait_time=1)
            if len(got) == 3:
                break
        for message in got:
            receiver.complete_message(message)
        assert sorted(str(m) for m in got) == ["m0", "m1", "m2"]


def test_a_message_arriving_between_receive_calls_is_still_released(
    client: ServiceBusClient, make_queue: object
) -> None:
    queue: str = make_queue(lock_duration=LOCK_SECONDS)  # type: ignore[operator]
    with client.get_queue_receiver(queue, prefetch_count=0) as idle:
        assert serialise_frame_processing(idle)
        # An empty receive leaves credit outstanding: the next message goes to this
        # receiver, outside any receive call, and only its keep-alive thread reads it.
        assert idle.receive_messages(max_message_count=5, max_wait_time=0.2) == []
        with client.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("late"))
        with client.get_queue_receiver(queue, prefetch_count=0) as other:
            got = []
            for _ in range(30):  # the keep-alive reads every 5 s; the lock would hold 120 s
                got = other.receive_messages(max_message_count=1, max_wait_time=1)
                if got:
                    break
            assert [str(m) for m in got] == ["late"]
            assert got[0].delivery_count == 0  # released, not abandoned: no attempt counted
            other.complete_message(got[0])


@pytest.fixture
def subscription(broker: ServiceBusBroker, queue: str) -> Iterator[ServiceBusSubscription]:
    os.environ[CA_FILE_ENV] = broker.certificate_path
    url = f"azuresb://local/{queue}?connection_string={quote(broker.connection_string, safe='')}"
    provider = servicebus_provider.ServiceBusProvider()
    opened = provider.open_subscription(parse_url(url))
    assert isinstance(opened, ServiceBusSubscription)
    try:
        yield opened
    finally:
        opened.close()
        provider.close()
        os.environ.pop(CA_FILE_ENV, None)


def test_the_driver_receives_through_the_lock(subscription: ServiceBusSubscription) -> None:
    assert subscription.receive_batch(10, 0.2) == []
    receiver = subscription._receiver.current
    assert receiver is not None and _is_serialised(receiver)
