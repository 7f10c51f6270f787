"""Entity options through the official SDK: auto-forwarding, auto-delete-on-idle, refused and
stored-only options, limits, and the namespace properties."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.aio.management import ServiceBusAdministrationClient as AsyncAdminClient
from azure.servicebus.management import AuthorizationRule, EntityStatus
from conftest import receive_and_complete

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

_ids = itertools.count()
# 5 minutes, the service's minimum auto_delete_on_idle, pass in 3 seconds on this broker.
IDLE_SCALE = 0.01


@pytest.fixture(scope="module")
def fast_broker() -> Iterator[ServiceBusBroker]:
    """A broker of its own: its idle clock is scaled, which must not reach other tests' entities."""
    with ServiceBusBroker(idle_time_scale=IDLE_SCALE) as running:
        yield running


@pytest.fixture(scope="module")
def admin(fast_broker: ServiceBusBroker) -> Iterator[Any]:
    with fast_broker.administration_client() as client:
        yield client


@pytest.fixture(scope="module")
def sb(fast_broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(fast_broker.connection_string) as client:
        yield client


def name(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def receive(sb: ServiceBusClient, queue: str, count: int, **kwargs: Any) -> list[Any]:
    with sb.get_queue_receiver(queue, **kwargs) as receiver:
        return receive_and_complete(receiver, count)


def wait_until_gone(get: Any, *args: str, deadline_s: float = 30.0) -> None:
    """Poll until the entity is deleted (the broker deletes it on its own timer)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            get(*args)
        except ResourceNotFoundError:
            return
        time.sleep(0.2)
    raise AssertionError(f"{args} still exists after {deadline_s} s")


# ----- auto-forwarding ------------------------------------------------------------------------


def test_queue_forwards_to_queue(admin: Any, sb: ServiceBusClient, fast_broker: ServiceBusBroker) -> None:
    target, source = name("fwd-target"), name("fwd-source")
    admin.create_queue(target)
    admin.create_queue(source, forward_to=target)
    assert admin.get_queue(source).forward_to.endswith(f"/{target}")
    with sb.get_queue_sender(source) as sender:
        sender.send_messages([
            ServiceBusMessage("a"), ServiceBusMessage("b", application_properties={"n": 1}),
        ])
    assert fast_broker.message_counts(source)["total"] == 0
    got = receive(sb, target, 2)
    assert [str(m) for m in got] == ["a", "b"]
    assert got[1].application_properties == {b"n": 1}


def test_subscription_forwards_to_queue_and_topic_chain(
    admin: Any, sb: ServiceBusClient, fast_broker: ServiceBusBroker
) -> None:
    topic, queue = name("fwd-topic"), name("fwd-q")
    admin.create_queue(queue)
    admin.create_topic(topic)
    admin.create_subscription(topic, "to-queue", forward_to=queue)
    admin.create_subscription(topic, "kept")
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages(ServiceBusMessage("event"))
    assert fast_broker.message_counts(f"{topic}/Subscriptions/to-queue")["total"] == 0
    assert fast_broker.message_counts(f"{topic}/Subscriptions/kept")["total"] == 1
    assert [str(m) for m in receive(sb, queue, 1)] == ["event"]


def test_dead_lettered_messages_are_forwarded(
    admin: Any, sb: ServiceBusClient, fast_broker: ServiceBusBroker
) -> None:
    graveyard, source = name("fwd-graveyard"), name("fwd-dl")
    admin.create_queue(graveyard)
    admin.create_queue(source, max_delivery_count=1, forward_dead_lettered_messages_to=graveyard)
    with sb.get_queue_sender(source) as sender:
        sender.send_messages(ServiceBusMessage("poison"))
    with sb.get_queue_receiver(source) as receiver:
        [msg] = receiver.receive_messages(max_wait_time=5)
        receiver.dead_letter_message(msg, reason="bad", error_description="cannot parse")
    assert fast_broker.message_counts(source) == {"active": 0, "scheduled": 0, "dead_letter": 0, "total": 0}
    [moved] = receive(sb, graveyard, 1)
    assert str(moved) == "poison"
    assert (moved.dead_letter_reason, moved.dead_letter_error_description) == ("bad", "cannot parse")


def test_forwarding_loop_is_cut_after_four_hops(
    admin: Any, sb: ServiceBusClient, fast_broker: ServiceBusBroker
) -> None:
    first, second = name("loop-a"), name("loop-b")
    admin.create_queue(first)
    admin.create_queue(second, forward_to=first)
    props = admin.get_queue(first)
    props.forward_to = second
    admin.update_queue(props)
    with sb.get_queue_sender(first) as sender:
        sender.send_messages(ServiceBusMessage("round and round"))
    with sb.get_queue_receiver(first, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = dlq.receive_messages(max_wait_time=5)
        assert dead.dead_letter_reason == "MaxTransferHopCountExceeded"
        assert "limit is 4 hops" in (dead.dead_letter_error_description or "")
        dlq.complete_message(dead)


def test_update_without_forward_to_turns_forwarding_off(
    admin: Any, sb: ServiceBusClient, fast_broker: ServiceBusBroker
) -> None:
    target, source = name("fwd-off-target"), name("fwd-off")
    admin.create_queue(target)
    admin.create_queue(source, forward_to=target)
    props = admin.get_queue(source)
    props.forward_to = None
    admin.update_queue(props)
    assert admin.get_queue(source).forward_to is None
    with sb.get_queue_sender(source) as sender:
        sender.send_messages(ServiceBusMessage("stays"))
    assert fast_broker.message_counts(source)["active"] == 1
    assert fast_broker.message_counts(target)["total"] == 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"forward_to": "no-such-entity"}, "forward_to: the entity 'no-such-entity' does not exist"),
        ({"forward_dead_lettered_messages_to": "nowhere"}, "forward_dead_lettered_messages_to: the entity"),
    ],
)
def test_forwarding_to_a_missing_entity_is_refused(admin: Any, kwargs: dict[str, Any], problem: str) -> None:
    queue = name("fwd-bad")
    with pytest.raises(HttpResponseError) as caught:
        admin.create_queue(queue, **kwargs)
    assert caught.value.status_code == 400
    assert problem in str(caught.value)
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue(queue)


def test_forwarding_to_itself_is_refused(admin: Any) -> None:
    queue = name("fwd-self")
    admin.create_queue(queue)
    props = admin.get_queue(queue)
    props.forward_to = queue
    with pytest.raises(HttpResponseError, match="cannot forward to itself"):
        admin.update_queue(props)


# ----- auto-delete-on-idle --------------------------------------------------------------------


def test_idle_queue_topic_and_subscription_are_deleted(admin: Any) -> None:
    queue, topic, kept_topic = name("idle-q"), name("idle-t"), name("idle-kept")
    admin.create_queue(queue, auto_delete_on_idle=timedelta(minutes=5))
    admin.create_topic(topic, auto_delete_on_idle=timedelta(minutes=5))
    admin.create_topic(kept_topic)
    admin.create_subscription(kept_topic, "idle-sub", auto_delete_on_idle=timedelta(minutes=5))
    assert admin.get_queue(queue).auto_delete_on_idle == timedelta(minutes=5)
    wait_until_gone(admin.get_queue, queue)
    wait_until_gone(admin.get_topic, topic)
    wait_until_gone(admin.get_subscription, kept_topic, "idle-sub")
    admin.get_topic(kept_topic)  # no auto-delete: still there


def test_attached_receiver_keeps_an_idle_queue_alive(admin: Any, sb: ServiceBusClient) -> None:
    queue = name("idle-busy")
    admin.create_queue(queue, auto_delete_on_idle=timedelta(minutes=5))
    window_s = 5 * 60 * IDLE_SCALE
    with sb.get_queue_receiver(queue) as receiver:
        # Waiting for messages for two idle windows is activity: the queue survives.
        receiver.receive_messages(max_wait_time=2 * window_s)
        assert admin.get_queue(queue).name == queue
    wait_until_gone(admin.get_queue, queue)


def test_auto_delete_on_idle_below_five_minutes_is_refused(admin: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        admin.create_queue(name("idle-short"), auto_delete_on_idle=timedelta(minutes=4))
    assert caught.value.status_code == 400
    assert "auto_delete_on_idle is 240 s; the minimum is 300 s" in str(caught.value)


# ----- refused, stored-only and limited options ------------------------------------------------


@pytest.mark.parametrize(
    ("create", "kwargs", "problem"),
    [
        ("queue", {"enable_partitioning": True}, "enable_partitioning=true is not supported"),
        ("queue", {"enable_express": True}, "enable_express=true is not supported"),
        ("topic", {"enable_partitioning": True}, "enable_partitioning=true is not supported"),
        ("topic", {"enable_express": True}, "enable_express=true is not supported"),
        ("queue", {"authorization_rules": [AuthorizationRule(
            type="SharedAccessAuthorizationRule", key_name="k", rights=["Listen"],
            primary_key="p" * 44, secondary_key="s" * 44)]}, "authorization_rules: per-entity SAS rules"),
        ("queue", {"lock_duration": timedelta(minutes=6)}, "the maximum is 300 s"),
        ("queue", {"user_metadata": "x" * 1025}, "the limit is 1024"),
        ("topic", {"duplicate_detection_history_time_window": timedelta(seconds=5)}, "between 20 s"),
    ],
)
def test_unimplemented_options_are_refused_with_400(
    admin: Any, create: str, kwargs: dict[str, Any], problem: str
) -> None:
    entity = name(f"refused-{create}")
    with pytest.raises(HttpResponseError) as caught:
        getattr(admin, f"create_{create}")(entity, **kwargs)
    assert caught.value.status_code == 400
    assert problem in str(caught.value)
    assert "p" * 44 not in str(caught.value)  # no key echoed back


def test_disabling_an_entity_is_refused(admin: Any) -> None:
    queue = name("status")
    admin.create_queue(queue)
    props = admin.get_queue(queue)
    props.status = EntityStatus.SEND_DISABLED
    with pytest.raises(HttpResponseError, match="status=SendDisabled is not supported"):
        admin.update_queue(props)


def test_defaults_of_refused_options_are_accepted_and_stored_options_reported(admin: Any) -> None:
    queue, topic = name("stored-q"), name("stored-t")
    admin.create_queue(
        queue, enable_partitioning=False, enable_express=False, user_metadata="owner=team-a",
        enable_batched_operations=False, max_size_in_megabytes=2048,
    )
    got = admin.get_queue(queue)
    assert (got.user_metadata, got.enable_batched_operations, got.max_size_in_megabytes) == (
        "owner=team-a", False, 2048)
    assert (got.enable_partitioning, got.enable_express, got.status) == (False, False, EntityStatus.ACTIVE)
    got.user_metadata = "owner=team-b"
    admin.update_queue(got)  # the whole description as read back is accepted
    assert admin.get_queue(queue).user_metadata == "owner=team-b"

    admin.create_topic(topic, support_ordering=False, user_metadata="t", enable_partitioning=False)
    got_topic = admin.get_topic(topic)
    assert (got_topic.support_ordering, got_topic.user_metadata) == (False, "t")
    admin.create_subscription(topic, "s", dead_lettering_on_filter_evaluation_exceptions=False,
                              user_metadata="sub", enable_batched_operations=False)
    got_sub = admin.get_subscription(topic, "s")
    assert (got_sub.dead_lettering_on_filter_evaluation_exceptions, got_sub.user_metadata,
            got_sub.enable_batched_operations) == (False, "sub", False)
    admin.update_subscription(topic, got_sub)


# ----- namespace properties --------------------------------------------------------------------


def test_namespace_properties_sync_and_async(admin: Any, fast_broker: ServiceBusBroker) -> None:
    props = admin.get_namespace_properties()
    assert props.name == fast_broker.host
    assert (props.messaging_sku, props.namespace_type) == ("Standard", "Messaging")
    assert props.messaging_units is None
    assert isinstance(props.created_at_utc, datetime)
    assert props.modified_at_utc == props.created_at_utc

    async def read(broker: ServiceBusBroker) -> Any:
        async with AsyncAdminClient.from_connection_string(
            broker.connection_string, connection_verify=broker.certificate_path
        ) as aadmin:
            return await aadmin.get_namespace_properties()

    assert asyncio.run(read(fast_broker)).created_at_utc == props.created_at_utc
    with ServiceBusBroker(sku="Premium") as premium_broker:
        premium = asyncio.run(read(premium_broker))
    assert (premium.messaging_sku, premium.messaging_units) == ("Premium", 1)


def test_broker_options_are_checked() -> None:
    with pytest.raises(ValueError, match="idle_time_scale must be above 0 and at most 1"):
        ServiceBusBroker(idle_time_scale=0)
    with pytest.raises(ValueError, match="sku must be 'Standard' or 'Premium'"):
        ServiceBusBroker(sku="Basic")
