"""The driver never hands out, nor settles, a message under a lock token another unsettled
message of it carries.

azure-servicebus 7.15 (``_pyamqp``) can build a message with its neighbour's delivery-id and
lock token when its keep-alive thread and the receiving thread process transfers at once
(see ``_unsettled.py``). The race itself needs a loaded machine and luck to show
(a repro under load is in docs/providers/azure-servicebus.md); what the driver does when it
shows is checked here, deterministically: a message received through the SDK from the local
broker is presented to the driver's check a second time, as the SDK's swap presents it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import quote

import cloudqueue
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage
from cloudqueue._url import parse_url

from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus._receiving import ServiceBusSubscription
from cloudqueue_azure_servicebus._unsettled import Unsettled
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

LOCK_SECONDS = 60.0  # far longer than the test: a message comes back only if given back


@pytest.fixture
def driver(broker: ServiceBusBroker, make_queue: object) -> Iterator[tuple[ServiceBusSubscription, str]]:
    queue: str = make_queue(lock_duration=LOCK_SECONDS)  # type: ignore[operator]
    os.environ[CA_FILE_ENV] = broker.certificate_path
    url = f"azuresb://local/{queue}?connection_string={quote(broker.connection_string, safe='')}"
    provider = servicebus_provider.ServiceBusProvider()
    subscription = provider.open_subscription(parse_url(url))
    assert isinstance(subscription, ServiceBusSubscription)
    try:
        yield subscription, queue
    finally:
        subscription.close()
        provider.close()
        os.environ.pop(CA_FILE_ENV, None)


def _send(client: ServiceBusClient, queue: str, *bodies: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(body) for body in bodies])


def _receive(subscription: ServiceBusSubscription, count: int) -> list[cloudqueue.driver.Delivery]:
    got: list[cloudqueue.driver.Delivery] = []
    for _ in range(40):  # a bounded number of 0.25 s polls, not a timed assertion
        got += subscription.receive_batch(count - len(got), 0.25)
        if len(got) >= count:
            break
    return got


def test_the_index_follows_each_message_by_its_lock_token(client: ServiceBusClient, queue: str) -> None:
    _send(client, queue, "a", "b")
    with client.get_queue_receiver(queue, prefetch_count=0) as receiver:
        first, second = receiver.receive_messages(max_message_count=2, max_wait_time=5)
        index: Unsettled[str] = Unsettled()
        index.add(first, "r1")
        index.add(second, "r1")
        assert (index.holding(first.lock_token), index.holding(second.lock_token)) == (first, second)
        assert index.get(first) == "r1" and list(index) == [first, second]
        index.pop(first)
        assert index.holding(first.lock_token) is None and index.get(first) is None
        index.forget_if(lambda message: message is second)
        assert not index and index.holding(second.lock_token) is None
        for message in (first, second):
            receiver.complete_message(message)


def test_a_token_seen_again_is_given_back_and_its_partner_no_longer_settles(
    driver: tuple[ServiceBusSubscription, str], client: ServiceBusClient
) -> None:
    subscription, queue = driver
    _send(client, queue, "a", "b")
    deliveries = sorted(_receive(subscription, 2), key=lambda d: d.body)
    assert [d.body for d in deliveries] == [b"a", b"b"]
    a, b = deliveries
    native = a.token
    assert isinstance(native, ServiceBusReceivedMessage)

    # What the SDK's swap looks like to the driver: a new message under a lock token an
    # unsettled message already carries.
    shared = subscription._shared_lock_tokens([native])
    assert shared == {native.lock_token}
    with subscription._receiver.use() as receiver:
        assert subscription._give_back_shared(receiver, [native], shared) == []

    # The partner handed out earlier no longer settles (settling it would settle the lock
    # of whichever message the service holds under that token); "a" comes back at once
    # (abandoned, one more attempt), long before its 60 s lock would have ended.
    errors = subscription.ack([a.token])
    assert errors is not None and isinstance(errors[0], cloudqueue.LeaseLost)
    again = _receive(subscription, 1)
    assert [(d.body, d.delivery_attempt) for d in again] == [(b"a", 2)]
    assert subscription.ack([again[0].token, b.token]) is None
    assert subscription.receive_batch(1, 1.0) == []  # nothing left, nothing settled twice


def test_two_messages_of_one_batch_with_one_token_are_neither_handed_out(
    driver: tuple[ServiceBusSubscription, str], client: ServiceBusClient
) -> None:
    subscription, queue = driver
    _send(client, queue, "c")
    (c,) = _receive(subscription, 1)
    native = c.token
    assert isinstance(native, ServiceBusReceivedMessage)
    subscription._unsettled.pop(native)  # as if it had just come in the same batch twice
    shared = subscription._shared_lock_tokens([native, native])
    assert shared == {native.lock_token}
    with subscription._receiver.use() as receiver:
        assert subscription._give_back_shared(receiver, [native, native], shared) == []
    again = _receive(subscription, 1)
    assert [(d.body, d.delivery_attempt) for d in again] == [(b"c", 2)]
    assert subscription.ack([again[0].token]) is None
