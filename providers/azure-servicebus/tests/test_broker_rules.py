"""Subscription rules through the official SDK: rule CRUD (sync and aio) and routing by rules."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio.management import ServiceBusAdministrationClient as AsyncAdminClient
from azure.servicebus.management import (
    CorrelationRuleFilter,
    FalseRuleFilter,
    SqlRuleAction,
    SqlRuleFilter,
    TrueRuleFilter,
)
from conftest import receive_and_complete

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

_ids = itertools.count()


@pytest.fixture(scope="module")
def admin(broker: ServiceBusBroker) -> Any:
    with broker.administration_client() as client:
        yield client


@pytest.fixture
def topic(admin: Any) -> str:
    name = f"rules-topic{next(_ids)}"
    admin.create_topic(name)
    return name


def subscription_with_only(admin: Any, topic: str, sub: str, rule: str, **kwargs: Any) -> None:
    """A subscription whose only rule is ``rule`` (the $Default true filter removed)."""
    admin.create_subscription(topic, sub)
    admin.create_rule(topic, sub, rule, **kwargs)
    admin.delete_rule(topic, sub, "$Default")


def drain(client: ServiceBusClient, topic: str, sub: str, count: int) -> list[Any]:
    """Receive and complete exactly ``count`` messages (the broker already holds them)."""
    with client.get_subscription_receiver(topic, sub) as receiver:
        return receive_and_complete(receiver, count)


def _text(value: Any) -> Any:
    """The SDK hands back AMQP strings of application properties as bytes."""
    return value.decode() if isinstance(value, bytes) else value


def total(broker: ServiceBusBroker, topic: str, sub: str) -> int:
    return broker.message_counts(f"{topic}/Subscriptions/{sub}")["total"]


def test_new_subscription_has_the_default_true_rule(admin: Any, topic: str) -> None:
    admin.create_subscription(topic, "s")
    [rule] = admin.list_rules(topic, "s")
    assert rule.name == "$Default"
    assert isinstance(rule.filter, TrueRuleFilter)
    assert rule.action is None
    assert isinstance(admin.get_rule(topic, "s", "$Default").filter, TrueRuleFilter)


def test_rule_crud_round_trips_filters_and_actions(admin: Any, topic: str) -> None:
    admin.create_subscription(topic, "s")
    created = admin.create_rule(
        topic, "s", "sql",
        filter=SqlRuleFilter("color = @c AND sys.Label = 'x'", parameters={"@c": "red"}),
        action=SqlRuleAction("SET qty = qty * @k", parameters={"@k": 2}),
    )
    assert created.filter.sql_expression == "color = @c AND sys.Label = 'x'"
    assert dict(created.filter.parameters) == {"@c": "red"}
    assert created.action.sql_expression == "SET qty = qty * @k"
    assert dict(created.action.parameters) == {"@k": 2}
    assert created.created_at_utc is not None

    admin.create_rule(topic, "s", "corr", filter=CorrelationRuleFilter(
        correlation_id="c1", label="L", content_type="text/plain", properties={"k": "v", "n": 3, "b": True},
    ))
    got = admin.get_rule(topic, "s", "corr")
    assert (got.filter.correlation_id, got.filter.label, got.filter.content_type) == ("c1", "L", "text/plain")
    assert dict(got.filter.properties) == {"k": "v", "n": 3, "b": True}
    assert got.action is None

    with pytest.raises(ResourceExistsError):
        admin.create_rule(topic, "s", "corr", filter=TrueRuleFilter())
    got.filter = FalseRuleFilter()
    admin.update_rule(topic, "s", got)
    assert isinstance(admin.get_rule(topic, "s", "corr").filter, FalseRuleFilter)
    assert [r.name for r in admin.list_rules(topic, "s")] == ["$Default", "sql", "corr"]
    assert [r.name for r in admin.list_rules(topic, "s", max_page_size=1)] == ["$Default", "sql", "corr"]

    admin.delete_rule(topic, "s", "sql")
    with pytest.raises(ResourceNotFoundError):
        admin.get_rule(topic, "s", "sql")
    with pytest.raises(ResourceNotFoundError):
        admin.delete_rule(topic, "s", "sql")
    missing = admin.get_rule(topic, "s", "$Default")
    missing.name = "never-created"
    with pytest.raises(ResourceNotFoundError):
        admin.update_rule(topic, "s", missing)
    with pytest.raises(ResourceNotFoundError):
        admin.list_rules(topic, "no-such-sub").next()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"filter": SqlRuleFilter("color = ")}, "expected a constant"),
        ({"filter": SqlRuleFilter("sys.Colour = 'x'")}, "sys.Colour at position 0 is not a system property"),
        ({"filter": SqlRuleFilter("color LIKE")}, "is invalid"),
        ({"filter": SqlRuleFilter("color = @p")}, "parameter @p is used but not given"),
        ({"filter": SqlRuleFilter("x = '" + "y" * 1100 + "'")}, "the limit is 1024"),
        ({"filter": CorrelationRuleFilter()}, "needs at least one"),
        ({"filter": TrueRuleFilter(), "action": SqlRuleAction("SET sys.Label = 'x'")},
         "rule actions that change system properties"),
        ({"filter": TrueRuleFilter(), "action": SqlRuleAction("DROP x")}, "expected SET or REMOVE"),
    ],
)
def test_invalid_rules_are_refused_with_400(
    admin: Any, topic: str, kwargs: dict[str, Any], problem: str
) -> None:
    admin.create_subscription(topic, "s")
    with pytest.raises(HttpResponseError) as caught:
        admin.create_rule(topic, "s", "bad", **kwargs)
    assert caught.value.status_code == 400
    assert problem in str(caught.value)
    assert [r.name for r in admin.list_rules(topic, "s")] == ["$Default"]


def test_messages_are_routed_by_rules(
    admin: Any, topic: str, client: ServiceBusClient, broker: ServiceBusBroker
) -> None:
    admin.create_subscription(topic, "everything")
    subscription_with_only(admin, topic, "red", "red", filter=SqlRuleFilter("color = 'red' AND qty > 1"))
    subscription_with_only(admin, topic, "labelled", "corr",
                           filter=CorrelationRuleFilter(label="urgent", properties={"region": "eu"}))
    subscription_with_only(admin, topic, "like", "like",
                           filter=SqlRuleFilter("sys.MessageId LIKE 'order-%' OR [my-prop] IN ('a', 'b')"))
    admin.create_subscription(topic, "nothing")
    admin.delete_rule(topic, "nothing", "$Default")
    # Two rules that both match a message: still one copy (rules without actions are ORed).
    subscription_with_only(admin, topic, "either", "qty", filter=SqlRuleFilter("qty >= 5"))
    admin.create_rule(topic, "either", "blue", filter=SqlRuleFilter("color = 'blue'"))

    messages = [
        ServiceBusMessage("m1", application_properties={"color": "red", "qty": 5}),
        ServiceBusMessage("m2", application_properties={"color": "red", "qty": 1}),
        ServiceBusMessage("m3", subject="urgent", application_properties={"region": "eu", "color": "blue"}),
        ServiceBusMessage("m4", subject="urgent", application_properties={"region": "us", "qty": 9}),
        ServiceBusMessage("m5", message_id="order-17", application_properties={"color": "blue", "qty": 7}),
        ServiceBusMessage("m6", application_properties={"my-prop": "b"}),
        ServiceBusMessage("m7"),  # no properties: only the true filter takes it
    ]
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(messages)

    expected = {
        "everything": ["m1", "m2", "m3", "m4", "m5", "m6", "m7"],
        "red": ["m1"],
        "labelled": ["m3"],
        "like": ["m5", "m6"],
        "either": ["m1", "m3", "m4", "m5"],
    }
    for sub, bodies in expected.items():
        assert total(broker, topic, sub) == len(bodies), sub
        assert [str(m) for m in drain(client, topic, sub, len(bodies))] == bodies, sub
    assert total(broker, topic, "nothing") == 0


def test_deleting_default_rule_routes_nothing_until_a_rule_is_added(
    admin: Any, topic: str, client: ServiceBusClient, broker: ServiceBusBroker
) -> None:
    admin.create_subscription(topic, "s")
    admin.delete_rule(topic, "s", "$Default")
    assert list(admin.list_rules(topic, "s")) == []
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(ServiceBusMessage("dropped"))
        assert total(broker, topic, "s") == 0
        admin.create_rule(topic, "s", "all", filter=TrueRuleFilter())
        sender.send_messages(ServiceBusMessage("kept"))
    assert [str(m) for m in drain(client, topic, "s", 1)] == ["kept"]


def test_rule_with_action_yields_its_own_annotated_copy(
    admin: Any, topic: str, client: ServiceBusClient, broker: ServiceBusBroker
) -> None:
    # $Default (no action) plus a rule with an action: a matching message arrives twice.
    admin.create_subscription(topic, "s")
    admin.create_rule(
        topic, "s", "halve", filter=SqlRuleFilter("color = 'red'"),
        action=SqlRuleAction("SET qty = qty / 2; SET tag = @t; REMOVE color", parameters={"@t": "halved"}),
    )
    with client.get_topic_sender(topic) as sender:
        sender.send_messages([
            ServiceBusMessage("red", application_properties={"color": "red", "qty": 10}),
            ServiceBusMessage("blue", application_properties={"color": "blue", "qty": 10}),
        ])
    got = drain(client, topic, "s", 3)
    props = [(str(m), {_text(k): _text(v) for k, v in (m.application_properties or {}).items()}) for m in got]
    plain = [p for p in props if "RuleName" not in p[1]]
    annotated = [p for p in props if "RuleName" in p[1]]
    assert sorted(body for body, _ in plain) == ["blue", "red"]
    assert len(annotated) == 1
    body, values = annotated[0]
    assert body == "red"
    assert values == {"qty": 5, "tag": "halved", "RuleName": "halve"}


def test_default_rule_carried_by_the_create_request_replaces_default(
    admin: Any, topic: str, client: ServiceBusClient, broker: ServiceBusBroker
) -> None:
    # SDK 7.15 has no keyword for it, so send the description the service accepts through the
    # SDK's own generated models and pipeline.
    from azure.servicebus.management._generated.models import (
        CreateSubscriptionBody,
        CreateSubscriptionBodyContent,
        RuleDescription,
        SqlFilter,
        SubscriptionDescription,
    )

    description = SubscriptionDescription(
        default_rule_description=RuleDescription(filter=SqlFilter(sql_expression="qty > 3"), name="big")
    )
    body = CreateSubscriptionBody(content=CreateSubscriptionBodyContent(subscription_description=description))
    admin._impl.subscription.put(topic, "s", body.serialize(is_xml=True))
    [rule] = admin.list_rules(topic, "s")
    assert (rule.name, rule.filter.sql_expression) == ("big", "qty > 3")
    with client.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage(str(q), application_properties={"qty": q}) for q in (1, 5)])
    assert total(broker, topic, "s") == 1
    assert [str(m) for m in drain(client, topic, "s", 1)] == ["5"]


def test_async_administration_client_manages_rules(broker: ServiceBusBroker, admin: Any, topic: str) -> None:
    admin.create_subscription(topic, "s")

    async def run() -> list[str]:
        async with AsyncAdminClient.from_connection_string(
            broker.connection_string, connection_verify=broker.certificate_path
        ) as aadmin:
            await aadmin.create_rule(topic, "s", "a", filter=SqlRuleFilter("n = 1"))
            rule = await aadmin.get_rule(topic, "s", "a")
            assert rule.filter.sql_expression == "n = 1"
            rule.filter = CorrelationRuleFilter(correlation_id="x")
            await aadmin.update_rule(topic, "s", rule)
            assert (await aadmin.get_rule(topic, "s", "a")).filter.correlation_id == "x"
            with pytest.raises(HttpResponseError):
                await aadmin.create_rule(topic, "s", "b", filter=SqlRuleFilter("n ="))
            await aadmin.delete_rule(topic, "s", "$Default")
            return [r.name async for r in aadmin.list_rules(topic, "s")]

    assert asyncio.run(run()) == ["a"]
