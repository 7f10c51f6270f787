"""Every lock token the broker hands out settles the message it came with (issue: "The lock
supplied is invalid" under load).

The broker sends each message as its own delivery, tagged with that message's lock token,
and maps the client's dispositions and ``$management`` requests back by delivery-id and by
token. Dead-lettering every message with its own index as the reason, then reading the
reasons back from the dead-letter subqueue, shows that each settlement (over the receiver
link, and over ``$management`` after a renewal on the same AMQP session) reached the
message it names and no other.

The SDK client is made with ``keep_alive=None``: with a keep-alive thread, pyamqp reads
and processes frames on two threads at once and can pair one message's body with the next
message's delivery-id and tag (seen at azure-servicebus 7.15); that is the SDK's race, not
the broker's, and this test checks the broker alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

COUNT = 300


@pytest.fixture
def quiet_client(broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(broker.connection_string, keep_alive=None) as client:
        yield client


def test_each_settlement_reaches_the_message_its_lock_token_came_with(
    quiet_client: ServiceBusClient, queue: str
) -> None:
    with quiet_client.get_queue_sender(queue) as sender:
        for start in range(0, COUNT, 100):
            sender.send_messages([
                ServiceBusMessage(f"m{i}", application_properties={"index": i})
                for i in range(start, start + 100)
            ])
    settled = 0
    with quiet_client.get_queue_receiver(queue, prefetch_count=20) as receiver:
        while settled < COUNT:
            batch = receiver.receive_messages(max_message_count=50, max_wait_time=5)
            assert batch, f"only {settled} of {COUNT} messages arrived"
            for message in batch:
                assert message.application_properties is not None
                index = int(message.application_properties[b"index"])
                if index % 2:
                    # A $management request on the receiver's session first: its transfers
                    # and the message deliveries share that session's delivery-ids.
                    receiver.renew_message_lock(message)
                receiver.dead_letter_message(message, reason=str(index))
                settled += 1

    reasons: dict[int, str | None] = {}
    with quiet_client.get_queue_receiver(
        queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, prefetch_count=20
    ) as dead:
        while len(reasons) < COUNT:
            batch = dead.receive_messages(max_message_count=50, max_wait_time=5)
            assert batch, f"only {len(reasons)} of {COUNT} dead letters arrived"
            for letter in batch:
                assert letter.application_properties is not None
                reasons[int(letter.application_properties[b"index"])] = letter.dead_letter_reason
                dead.complete_message(letter)
    assert reasons == {i: str(i) for i in range(COUNT)}
