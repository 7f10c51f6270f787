"""Topic and subscription administration: CRUD, listing, updates and status codes."""

from __future__ import annotations

import pytest
from conftest import PROJECT, SubscriptionFactory, unique
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2, field_mask_pb2

from cloudqueue_pubsub.testing import PubSubServer


def test_topic_lifecycle(publisher: pubsub_v1.PublisherClient) -> None:
    name = unique("topics")
    created = publisher.create_topic(request={"name": name, "labels": {"team": "a"}})
    assert created.name == name
    assert publisher.get_topic(topic=name).labels == {"team": "a"}

    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=name)

    updated = publisher.update_topic(
        request={
            "topic": {"name": name, "labels": {"team": "b"}},
            "update_mask": field_mask_pb2.FieldMask(paths=["labels"]),
        }
    )
    assert updated.labels == {"team": "b"}
    assert publisher.get_topic(topic=name).labels == {"team": "b"}

    publisher.delete_topic(topic=name)
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=name)
    with pytest.raises(exceptions.NotFound):
        publisher.delete_topic(topic=name)


def test_update_topic_needs_a_known_mask(publisher: pubsub_v1.PublisherClient, topic: str) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        publisher.update_topic(request={"topic": {"name": topic}, "update_mask": {"paths": []}})
    with pytest.raises(exceptions.InvalidArgument):
        publisher.update_topic(
            request={"topic": {"name": topic}, "update_mask": {"paths": ["name"]}}
        )


@pytest.mark.parametrize(
    "name",
    [
        "projects/p/topics/ab",  # too short
        "projects/p/topics/1abc",  # must start with a letter
        "projects/p/topics/googthing",  # reserved prefix
        "projects/p/topics/has space",
        "topics/abc",
        "projects/p/subscriptions/abc",
    ],
)
def test_invalid_topic_names_are_refused(publisher: pubsub_v1.PublisherClient, name: str) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        publisher.create_topic(name=name)


def test_list_topics_pages_through_one_project(publisher: pubsub_v1.PublisherClient) -> None:
    names = sorted(f"projects/{PROJECT}/topics/listed-{i:02d}" for i in range(7))
    for name in names:
        publisher.create_topic(name=name)
    publisher.create_topic(name="projects/other-project/topics/elsewhere")

    pages = publisher.list_topics(request={"project": f"projects/{PROJECT}", "page_size": 3}).pages
    seen = [[topic.name for topic in page.topics] for page in pages]
    assert [len(page) for page in seen] == [3, 3, 1]
    assert [name for page in seen for name in page] == names


def test_subscription_lifecycle(
    subscriber: pubsub_v1.SubscriberClient, publisher: pubsub_v1.PublisherClient, topic: str
) -> None:
    name = unique("subscriptions")
    created = subscriber.create_subscription(
        request={"name": name, "topic": topic, "ack_deadline_seconds": 30, "labels": {"x": "1"}}
    )
    assert created.ack_deadline_seconds == 30
    assert created.topic == topic
    assert created.message_retention_duration.total_seconds() == 7 * 24 * 3600

    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_subscription(name=name, topic=topic, ack_deadline_seconds=10)

    fetched = subscriber.get_subscription(subscription=name)
    assert fetched.labels == {"x": "1"}

    updated = subscriber.update_subscription(
        request={
            "subscription": {"name": name, "ack_deadline_seconds": 60},
            "update_mask": {"paths": ["ack_deadline_seconds"]},
        }
    )
    assert updated.ack_deadline_seconds == 60
    assert subscriber.get_subscription(subscription=name).ack_deadline_seconds == 60

    listed = list(publisher.list_topic_subscriptions(topic=topic))
    assert listed == [name]
    all_subscriptions = subscriber.list_subscriptions(project=f"projects/{PROJECT}")
    assert [s.name for s in all_subscriptions] == [name]

    subscriber.delete_subscription(subscription=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.delete_subscription(subscription=name)
    assert list(publisher.list_topic_subscriptions(topic=topic)) == []


def test_subscription_needs_an_existing_topic(subscriber: pubsub_v1.SubscriberClient) -> None:
    with pytest.raises(exceptions.NotFound):
        subscriber.create_subscription(
            name=unique("subscriptions"), topic=unique("topics"), ack_deadline_seconds=10
        )


def test_default_ack_deadline_is_ten_seconds(
    subscriber: pubsub_v1.SubscriberClient, topic: str
) -> None:
    created = subscriber.create_subscription(
        request={"name": unique("subscriptions"), "topic": topic, "ack_deadline_seconds": 0}
    )
    assert created.ack_deadline_seconds == 10


def test_deleting_a_topic_keeps_its_subscriptions(
    subscriber: pubsub_v1.SubscriberClient,
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    make_subscription: SubscriptionFactory,
) -> None:
    subscription = make_subscription()
    publisher.delete_topic(topic=topic)
    assert subscriber.get_subscription(subscription=subscription).topic == "_deleted-topic_"


@pytest.mark.parametrize(
    "fields",
    [
        {"ack_deadline_seconds": 5},
        {"ack_deadline_seconds": 601},
        {
            "ack_deadline_seconds": 10,
            "message_retention_duration": duration_pb2.Duration(seconds=60),
        },
        {"ack_deadline_seconds": 10, "filter": "attributes.x = "},
        {"ack_deadline_seconds": 10, "filter": "color = 'red'"},
        {
            "ack_deadline_seconds": 10,
            "retry_policy": {"minimum_backoff": {"seconds": 20}, "maximum_backoff": {"seconds": 5}},
        },
        {"ack_deadline_seconds": 10, "retry_policy": {"maximum_backoff": {"seconds": 601}}},
    ],
)
def test_invalid_subscription_settings_are_refused(
    subscriber: pubsub_v1.SubscriberClient, topic: str, fields: dict[str, object]
) -> None:
    name = unique("subscriptions")
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.create_subscription(request={"name": name, "topic": topic, **fields})
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=name)


@pytest.mark.parametrize("attempts", [4, 101])
def test_dead_letter_attempts_must_be_5_to_100(
    subscriber: pubsub_v1.SubscriberClient,
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    attempts: int,
) -> None:
    dead_letter_topic = unique("topics")
    publisher.create_topic(name=dead_letter_topic)
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.create_subscription(
            request={
                "name": unique("subscriptions"),
                "topic": topic,
                "ack_deadline_seconds": 10,
                "dead_letter_policy": {
                    "dead_letter_topic": dead_letter_topic,
                    "max_delivery_attempts": attempts,
                },
            }
        )


def test_dead_letter_policy_defaults_and_needs_an_existing_topic(
    subscriber: pubsub_v1.SubscriberClient, publisher: pubsub_v1.PublisherClient, topic: str
) -> None:
    missing = unique("topics")
    request = {
        "name": unique("subscriptions"),
        "topic": topic,
        "ack_deadline_seconds": 10,
        "dead_letter_policy": {"dead_letter_topic": missing},
    }
    with pytest.raises(exceptions.NotFound):
        subscriber.create_subscription(request=request)
    publisher.create_topic(name=missing)
    created = subscriber.create_subscription(request=request)
    assert created.dead_letter_policy.max_delivery_attempts == 5


def test_retry_policy_defaults(subscriber: pubsub_v1.SubscriberClient, topic: str) -> None:
    created = subscriber.create_subscription(
        request={
            "name": unique("subscriptions"),
            "topic": topic,
            "ack_deadline_seconds": 10,
            "retry_policy": {},
            "enable_message_ordering": True,
        }
    )
    assert created.retry_policy.minimum_backoff.total_seconds() == 10
    assert created.retry_policy.maximum_backoff.total_seconds() == 600
    assert created.enable_message_ordering


_TRANSFORM = {"javascript_udf": {"function_name": "f", "code": "function f(m, x) { return m; }"}}

#: Each unsupported subscription feature, the field the refusal must name, and its value.
UNSUPPORTED_SUBSCRIPTION_FIELDS = [
    ("message_transforms", "message_transforms", [_TRANSFORM]),
    ("bigquery_config", "bigquery_config", {"table": "project.dataset.table"}),
    ("cloud_storage_config", "cloud_storage_config", {"bucket": "bucket"}),
    ("bigtable_config", "bigtable_config", {"table": "projects/p/instances/i/tables/t"}),
    (
        "push_config",
        "push_config.oidc_token",
        {
            "push_endpoint": "http://127.0.0.1:9/push",
            "oidc_token": {"service_account_email": "push@example.iam.gserviceaccount.com"},
        },
    ),
]

UNSUPPORTED_TOPIC_FIELDS = [
    ("message_transforms", "message_transforms", [_TRANSFORM]),
    ("schema_settings", "schema_settings", {"schema": f"projects/{PROJECT}/schemas/s"}),
    ("kms_key_name", "kms_key_name", "projects/p/locations/l/keyRings/r/cryptoKeys/k"),
    (
        "ingestion_data_source_settings",
        "ingestion_data_source_settings",
        {"aws_kinesis": {"stream_arn": "arn:aws:kinesis:us-east-1:1:stream/s"}},
    ),
]


@pytest.mark.parametrize(("field", "named", "value"), UNSUPPORTED_SUBSCRIPTION_FIELDS)
def test_unsupported_subscription_features_get_the_same_refusal_on_create_and_update(
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    field: str,
    named: str,
    value: object,
) -> None:
    name = unique("subscriptions")
    with pytest.raises(exceptions.MethodNotImplemented) as created:
        subscriber.create_subscription(
            request={"name": name, "topic": topic, "ack_deadline_seconds": 10, field: value}
        )
    existing = make_subscription()
    with pytest.raises(exceptions.MethodNotImplemented) as updated:
        subscriber.update_subscription(
            request={
                "subscription": {"name": existing, field: value},
                "update_mask": {"paths": [field]},
            }
        )
    assert created.value.message == updated.value.message
    assert created.value.message.startswith(f"{named}: ")
    assert "not supported by this local Pub/Sub server" in created.value.message
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=name)
    assert not getattr(subscriber.get_subscription(subscription=existing), field)


@pytest.mark.parametrize(("field", "named", "value"), UNSUPPORTED_TOPIC_FIELDS)
def test_unsupported_topic_features_get_the_same_refusal_on_create_and_update(
    publisher: pubsub_v1.PublisherClient, topic: str, field: str, named: str, value: object
) -> None:
    name = unique("topics")
    with pytest.raises(exceptions.MethodNotImplemented) as created:
        publisher.create_topic(request={"name": name, field: value})
    with pytest.raises(exceptions.MethodNotImplemented) as updated:
        publisher.update_topic(
            request={"topic": {"name": topic, field: value}, "update_mask": {"paths": [field]}}
        )
    assert created.value.message == updated.value.message
    assert created.value.message.startswith(f"{named}: ")
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=name)


def test_clearing_an_unsupported_field_is_accepted(
    publisher: pubsub_v1.PublisherClient, topic: str
) -> None:
    updated = publisher.update_topic(
        request={"topic": {"name": topic}, "update_mask": {"paths": ["message_transforms"]}}
    )
    assert list(updated.message_transforms) == []


def test_unsupported_methods_are_unimplemented_and_named(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
) -> None:
    subscription = make_subscription()
    with pytest.raises(exceptions.MethodNotImplemented) as detach:
        publisher.detach_subscription(request={"subscription": subscription})
    assert "google.pubsub.v1.Publisher/DetachSubscription" in detach.value.message
    with pytest.raises(exceptions.MethodNotImplemented) as iam:
        publisher.get_iam_policy(request={"resource": topic})
    assert "google.iam.v1.IAMPolicy/GetIamPolicy" in iam.value.message
    schemas = pubsub_v1.SchemaServiceClient()
    with pytest.raises(exceptions.MethodNotImplemented) as schema:
        schemas.list_schemas(request={"parent": f"projects/{PROJECT}"})
    assert "google.pubsub.v1.SchemaService/ListSchemas" in schema.value.message
    assert server.request_counts()["DetachSubscription"] == 1


def test_update_subscription_refuses_immutable_fields(
    subscriber: pubsub_v1.SubscriberClient, make_subscription: SubscriptionFactory
) -> None:
    name = make_subscription()
    for path in ("filter", "enable_message_ordering", "topic"):
        with pytest.raises(exceptions.InvalidArgument):
            subscriber.update_subscription(
                request={"subscription": {"name": name}, "update_mask": {"paths": [path]}}
            )
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.update_subscription(
            request={
                "subscription": {"name": name, "ack_deadline_seconds": 700},
                "update_mask": {"paths": ["ack_deadline_seconds"]},
            }
        )
    assert subscriber.get_subscription(subscription=name).ack_deadline_seconds == 10


def test_request_counts(server: PubSubServer, publisher: pubsub_v1.PublisherClient) -> None:
    server.reset_counts()
    publisher.create_topic(name=unique("topics"))
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=unique("topics"))
    assert server.request_counts() == {"CreateTopic": 1, "GetTopic": 1}
    server.reset_counts()
    assert server.request_counts() == {}
