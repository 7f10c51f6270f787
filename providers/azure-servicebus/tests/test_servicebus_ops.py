"""Operations hooks of the Service Bus provider (stats, native peek, dead-letter facts,
redrive source and target), and the broker's runtime counts and peek they rely on,
all through the official SDK against the local broker."""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import cloudqueue
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from cloudqueue._url import parse_url
from cloudqueue.driver import Message, Url
from cloudqueue.errors import InvalidArgument, Unsupported
from cloudqueue.filters import Absent
from cloudqueue.testing.contract import unique_name
from cloudqueue.wire import REDRIVE_ORIGINAL_ID

from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

PROVIDER = servicebus_provider._PROVIDER


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker() as running:
        os.environ[CA_FILE_ENV] = running.certificate_path
        yield running
        os.environ.pop(CA_FILE_ENV, None)
        PROVIDER.close()


@pytest.fixture(scope="module")
def sdk(broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(broker.connection_string) as client:
        yield client


def url_text(broker: ServiceBusBroker, name: str, **params: str) -> str:
    extra = "".join(f"&{key}={value}" for key, value in params.items())
    return f"azuresb://local/{name}?connection_string={quote(broker.connection_string, safe='')}{extra}"


def url(broker: ServiceBusBroker, name: str, **params: str) -> Url:
    return parse_url(url_text(broker, name, **params), secret_params=PROVIDER.secret_parameters)


def send(sdk: ServiceBusClient, queue: str, *bodies: str, **options: Any) -> None:
    with sdk.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(body, **options) for body in bodies])


def in_an_hour() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)


def fill_every_state(sdk: ServiceBusClient, queue: str) -> Any:
    """One message in each state: available, locked, deferred, scheduled, dead-lettered.
    Returns the receiver holding the locked one (close it to release)."""
    send(sdk, queue, "locked", "deferred", "dead", "available")
    send(sdk, queue, "scheduled", scheduled_enqueue_time_utc=in_an_hour())
    receiver = sdk.get_queue_receiver(queue, prefetch_count=0)
    receiver.__enter__()
    got = {str(m): m for m in receiver.receive_messages(max_message_count=3, max_wait_time=5)}
    assert set(got) == {"locked", "deferred", "dead"}
    receiver.defer_message(got["deferred"])
    receiver.dead_letter_message(got["dead"], reason="bad", error_description="bad input")
    return receiver


# -- the broker: runtime counts and peek as the service gives them ----------------------


def test_runtime_counts_match_the_service_for_every_state(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("counts")
    broker.create_queue(queue)
    receiver = fill_every_state(sdk, queue)
    try:
        props = broker.administration_client().get_queue_runtime_properties(queue)
        # Active includes locked and deferred messages, as the service counts them.
        assert props.active_message_count == 3
        assert props.scheduled_message_count == 1
        assert props.dead_letter_message_count == 1
        assert (props.transfer_message_count, props.transfer_dead_letter_message_count) == (0, 0)
        assert props.total_message_count == 5
    finally:
        receiver.close()


def test_runtime_counts_through_the_async_administration_client(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    from azure.servicebus.aio.management import ServiceBusAdministrationClient

    queue = unique_name("acounts")
    broker.create_queue(queue)
    send(sdk, queue, "a", "b")
    send(sdk, queue, "later", scheduled_enqueue_time_utc=in_an_hour())

    async def read() -> Any:
        async with ServiceBusAdministrationClient.from_connection_string(
            broker.connection_string, connection_verify=broker.certificate_path
        ) as admin:
            return await admin.get_queue_runtime_properties(queue)

    props = asyncio.run(read())
    assert (props.active_message_count, props.scheduled_message_count, props.total_message_count) == (2, 1, 3)


def test_a_scheduled_message_waits_in_the_topic_not_in_its_subscriptions(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    topic = unique_name("sched")
    broker.create_topic(topic)
    for sub in ("s1", "s2"):
        broker.create_subscription(topic, sub)
    with sdk.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage("now")])
        sender.send_messages([ServiceBusMessage("later", scheduled_enqueue_time_utc=in_an_hour())])
    admin = broker.administration_client()
    assert admin.get_topic_runtime_properties(topic).scheduled_message_count == 1
    sub = admin.get_subscription_runtime_properties(topic, "s1")
    assert (sub.active_message_count, sub.total_message_count) == (1, 1)
    with sdk.get_subscription_receiver(topic, "s1") as receiver:
        assert [str(m) for m in receiver.peek_messages(10, sequence_number=1)] == ["now"]


def test_peek_shows_locked_deferred_and_scheduled_without_counting_a_delivery(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("peek")
    broker.create_queue(queue)
    receiver = fill_every_state(sdk, queue)
    try:
        with sdk.get_queue_receiver(queue) as peeker:
            peeked = peeker.peek_messages(10, sequence_number=1)
        assert [str(m) for m in peeked] == ["locked", "deferred", "available", "scheduled"]
        assert all(m.delivery_count == 0 for m in peeked)
        assert all(m.lock_token is None for m in peeked)
    finally:
        receiver.close()


# -- stats ----------------------------------------------------------------------------


def test_stats_of_a_queue(broker: ServiceBusBroker, sdk: ServiceBusClient) -> None:
    queue = unique_name("stats")
    broker.create_queue(queue)
    empty = PROVIDER.stats(url(broker, queue))
    assert (empty.available, empty.delayed, empty.dead_letters, empty.oldest_age) == (0, 0, 0, None)
    receiver = fill_every_state(sdk, queue)
    try:
        stats = PROVIDER.stats(url(broker, queue))
    finally:
        receiver.close()
    assert (stats.available, stats.in_flight, stats.delayed, stats.dead_letters) == (3, None, 1, 1)
    assert stats.exact is False
    assert stats.oldest_age is not None and 0 <= stats.oldest_age < 60
    assert (stats.total_sent, stats.total_received) == (None, None)


def test_stats_of_a_dead_letter_subqueue_and_of_a_subscription(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("dlqstats")
    broker.create_queue(queue)
    fill_every_state(sdk, queue).close()
    dead = PROVIDER.stats(url(broker, queue, subqueue="deadletter"))
    assert (dead.available, dead.delayed, dead.dead_letters) == (1, 0, None)
    assert dead.oldest_age is not None

    topic = unique_name("substats")
    broker.create_topic(topic)
    broker.create_subscription(topic, "only")
    with sdk.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage("x"), ServiceBusMessage("y")])
    sub = PROVIDER.stats(url(broker, topic, subscription="only"))
    assert (sub.available, sub.delayed, sub.dead_letters) == (2, None, 0)


def test_stats_of_a_topic_names_the_fix(broker: ServiceBusBroker) -> None:
    topic = unique_name("bare")
    broker.create_topic(topic)
    with pytest.raises(InvalidArgument, match=r"subscription=<name>"):
        PROVIDER.stats(url(broker, topic))


def test_session_entities_have_stats_but_refuse_peek(broker: ServiceBusBroker, sdk: ServiceBusClient) -> None:
    queue = unique_name("sessions")
    broker.create_queue(queue, requires_session=True)
    send(sdk, queue, "a", session_id="k")
    stats = PROVIDER.stats(url(broker, queue))
    assert (stats.available, stats.oldest_age) == (1, None)
    with pytest.raises(Unsupported, match="requires sessions"):
        PROVIDER.peek(url(broker, queue), 10)


# -- peek -----------------------------------------------------------------------------


def test_peek_pages_past_one_request_oldest_first_and_changes_nothing(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("pages")
    broker.create_queue(queue)
    bodies = [f"m{i:03}" for i in range(300)]
    with sdk.get_queue_sender(queue) as sender:
        for start in range(0, 300, 100):
            sender.send_messages([ServiceBusMessage(b, application_properties={"n": b})
                                  for b in bodies[start:start + 100]])
    peeked = PROVIDER.peek(url(broker, queue), 280)
    assert [d.body.decode() for d in peeked] == bodies[:280]
    assert all(d.token is None and d.delivery_attempt == 1 for d in peeked)
    assert peeked[5].attributes == {"n": "m005"}
    assert len(PROVIDER.peek(url(broker, queue), 1000)) == 300
    with sdk.get_queue_receiver(queue) as receiver:
        [first] = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert (str(first), first.delivery_count) == ("m000", 0)
        receiver.complete_message(first)


def test_peek_bounds_are_checked(broker: ServiceBusBroker) -> None:
    queue = unique_name("bounds")
    broker.create_queue(queue)
    for bad in (0, 1001):
        with pytest.raises(InvalidArgument, match="1 to 1000"):
            PROVIDER.peek(url(broker, queue), bad)


# -- dead-letter facts, redrive source and target --------------------------------------


def test_dead_letter_facts_of_a_consumer_dead_letter_and_a_max_delivery_one(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("facts")
    broker.create_queue(queue, max_delivery_count=2)
    send(sdk, queue, "explicit", application_properties={"kind": "a"})
    send(sdk, queue, "poison", application_properties={"kind": "b"})
    with sdk.get_queue_receiver(queue, prefetch_count=0) as receiver:
        explicit, poison = receiver.receive_messages(max_message_count=2, max_wait_time=5)
        receiver.dead_letter_message(explicit, reason="schema", error_description="field x missing")
        receiver.abandon_message(poison)
        [again] = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        receiver.abandon_message(again)  # the second failed delivery: dead-lettered
    dlq = url(broker, queue, subqueue="deadletter")
    facts = {d.body.decode(): PROVIDER.dead_letter_facts(dlq, d) for d in PROVIDER.peek(dlq, 10)}
    assert facts["explicit"].reason == "schema: field x missing"
    assert facts["explicit"].delivery_count == 1
    assert facts["explicit"].attributes == {"kind": "a"}
    assert facts["explicit"].source == queue
    poison_reason = facts["poison"].reason
    assert poison_reason is not None and poison_reason.startswith("MaxDeliveryCountExceeded: ")
    assert facts["poison"].delivery_count == 2
    assert facts["poison"].attributes == {"kind": "b"}
    assert facts["poison"].original_id is None  # the dead letter keeps its MessageId


def test_redrive_source_is_the_entity_of_the_subqueue(broker: ServiceBusBroker) -> None:
    source = PROVIDER.redrive_source(url(broker, "orders", subscription="billing", subqueue="deadletter"))
    assert source.param("subqueue") is None
    assert (source.path.strip("/"), source.subscription) == ("orders", "billing")
    with pytest.raises(InvalidArgument, match="subqueue=deadletter"):
        PROVIDER.redrive_source(url(broker, "orders"))


def test_redrive_target_of_a_queue_keeps_the_session_and_deduplicates_retries(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("target")
    broker.create_queue(queue, requires_session=True, requires_duplicate_detection=True)
    target = PROVIDER.open_redrive_target(url(broker, queue))
    try:
        redriven = Message(b"again", attributes={REDRIVE_ORIGINAL_ID: "m1"}, ordering_key="customer-7",
                           deduplication_id="redrive-" + "ab" * 32)
        assert target.capabilities.deduplication
        target.send_batch([redriven])
        target.send_batch([redriven])  # a retried redrive of the same dead letter
    finally:
        target.close()
    with sdk.get_queue_receiver(queue, session_id="customer-7") as receiver:
        got = receiver.receive_messages(max_message_count=5, max_wait_time=3)
    assert [(str(m), m.message_id) for m in got] == [("again", "redrive-" + "ab" * 32)]


def test_redrive_target_of_a_lone_subscription_is_its_topic(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    topic = unique_name("lone")
    broker.create_topic(topic)
    broker.create_subscription(topic, "only")
    target = PROVIDER.open_redrive_target(url(broker, topic, subscription="only"))
    try:
        target.send_batch([Message(b"back")])
    finally:
        target.close()
    with sdk.get_subscription_receiver(topic, "only") as receiver:
        assert [str(m) for m in receiver.receive_messages(max_message_count=5, max_wait_time=3)] == ["back"]


def test_redrive_target_of_a_subscription_with_siblings_is_refused_with_the_workaround(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    topic = unique_name("siblings")
    urls = [url_text(broker, topic, subscription=name) for name in ("billing", "audit", "search")]
    for text in urls:
        cloudqueue.declare(text)
    with pytest.raises(Unsupported) as refused:
        PROVIDER.open_redrive_target(parse_url(urls[0], secret_params=PROVIDER.secret_parameters))
    assert "(audit, search)" in str(refused.value)
    assert "to=" in str(refused.value) and REDRIVE_ORIGINAL_ID in str(refused.value)
    assert broker.connection_string not in str(refused.value)

    # The documented workaround (docs/providers/azure-servicebus.md): siblings exclude redriven
    # messages, and the redrive goes to the topic.
    from cloudqueue import ops

    with sdk.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage("failed")])
    for name in ("billing", "audit", "search"):
        with sdk.get_subscription_receiver(topic, name) as receiver:
            [message] = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            if name == "billing":
                receiver.dead_letter_message(message, reason="bug")
            else:
                receiver.complete_message(message)
    for text in urls[1:]:
        cloudqueue.declare(text, filter=Absent(REDRIVE_ORIGINAL_ID))
    report = ops.redrive(cloudqueue.dead_letter_url(urls[0]), to=url_text(broker, topic))
    assert report.moved == 1
    with sdk.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage("new")])
    for name, expected in (("billing", ["failed", "new"]), ("audit", ["new"]), ("search", ["new"])):
        with sdk.get_subscription_receiver(topic, name) as receiver:
            got = receiver.receive_messages(max_message_count=5, max_wait_time=3)
            assert [str(m) for m in got] == expected, name


def test_peek_of_a_dead_letter_subqueue_reads_the_sdk_dead_letters(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    queue = unique_name("dlqpeek")
    broker.create_queue(queue)
    send(sdk, queue, "one", "two")
    with sdk.get_queue_receiver(queue) as receiver:
        for message in receiver.receive_messages(max_message_count=2, max_wait_time=5):
            receiver.dead_letter_message(message, reason="r")
    peeked = PROVIDER.peek(url(broker, queue, subqueue="deadletter"), 10)
    assert [d.body for d in peeked] == [b"one", b"two"]
    with sdk.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        got = receiver.receive_messages(max_message_count=2, max_wait_time=5)
        assert [m.delivery_count for m in got] == [0, 0]  # the peeks counted no delivery


# -- end to end through cloudqueue.ops -------------------------------------------------


def test_redrive_of_session_dead_letters_restores_bodies_keys_and_provenance(
    broker: ServiceBusBroker, sdk: ServiceBusClient
) -> None:
    from cloudqueue import ops
    from cloudqueue.wire import REDRIVE_DELIVERY_COUNT, REDRIVE_REASON

    queue = unique_name("e2e")
    broker.create_queue(queue, requires_session=True, requires_duplicate_detection=True)
    sent = {f"k{key}": [bytes([key, n, 0xFF]) for n in range(3)] for key in range(3)}
    with sdk.get_queue_sender(queue) as sender:
        for key, bodies in sent.items():
            sender.send_messages([ServiceBusMessage(body, session_id=key, application_properties={"key": key})
                                  for body in bodies])
    for key in sent:
        with sdk.get_queue_receiver(queue, session_id=key) as receiver:
            for message in receiver.receive_messages(max_message_count=3, max_wait_time=5):
                receiver.dead_letter_message(message, reason="bug-42")
    dlq = url_text(broker, queue, subqueue="deadletter")
    assert ops.stats(url_text(broker, queue)).dead_letters == 9
    assert [m.dead_letter.reason for m in ops.dead_letters(url_text(broker, queue), 20)
            if m.dead_letter] == ["bug-42"] * 9

    report = ops.redrive(dlq)
    assert (report.moved, report.skipped, report.failures, report.reasons) == (9, 0, [], {"bug-42": 9})
    assert broker.connection_string not in report.source + report.target
    assert ops.stats(url_text(broker, queue)).dead_letters == 0
    for key, bodies in sent.items():
        with sdk.get_queue_receiver(queue, session_id=key) as receiver:
            got = receiver.receive_messages(max_message_count=5, max_wait_time=3)
            assert [b"".join(m.body) for m in got] == bodies  # byte for byte, in key order
            props = [{k.decode(): v.decode() for k, v in (m.application_properties or {}).items()}
                     for m in got]
            assert all(p["key"] == key and p[REDRIVE_REASON] == "bug-42" for p in props)
            assert all(p[REDRIVE_DELIVERY_COUNT] == "1" for p in props)
            assert not any(k.startswith("DeadLetter") for p in props for k in p)
            for message in got:
                receiver.complete_message(message)
