"""Validation and defaults for topics, subscriptions and published messages.

Limits follow Google's documentation; each refusal uses the status code the service documents
(INVALID_ARGUMENT for bad values, NOT_FOUND for a missing referenced topic, UNIMPLEMENTED for
features this local server does not have).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from typing import Any

from google.protobuf import duration_pb2
from google.pubsub_v1 import types

from ._errors import InvalidArgument, NotFound, unsupported
from ._filters import compile_filter
from ._names import parse_subscription, parse_topic
from ._push_config import check_push_config

TopicPb: Any = types.Topic.pb()
SubscriptionPb: Any = types.Subscription.pb()
SnapshotPb: Any = types.Snapshot.pb()

DEFAULT_ACK_DEADLINE = 10
MAX_ACK_DEADLINE = 600
MIN_ACK_DEADLINE = 10
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
MIN_DELIVERY_ATTEMPTS = 5
MAX_DELIVERY_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = 10.0
DEFAULT_MAX_BACKOFF = 600.0
MAX_BACKOFF = 600.0
DEFAULT_SUBSCRIPTION_RETENTION = 7 * 24 * 3600
MIN_SUBSCRIPTION_RETENTION = 10 * 60
MAX_SUBSCRIPTION_RETENTION = 31 * 24 * 3600
MIN_TOPIC_RETENTION = 10 * 60
MAX_TOPIC_RETENTION = 31 * 24 * 3600
DEFAULT_EXPIRATION_TTL = 31 * 24 * 3600

MAX_MESSAGES_PER_PUBLISH = 1000
MAX_PUBLISH_REQUEST_BYTES = 10 * 1000 * 1000
MAX_MESSAGE_DATA_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024

TopicExists = Callable[[str], bool]


def seconds_of(duration: Any) -> float:
    """A protobuf Duration as float seconds."""
    return float(duration.seconds) + float(duration.nanos) / 1e9


def duration(seconds: float) -> Any:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def check_ack_deadline(seconds: int, *, allow_zero: bool, what: str) -> None:
    low = 0 if allow_zero else MIN_ACK_DEADLINE
    if not low <= seconds <= MAX_ACK_DEADLINE:
        raise InvalidArgument(
            f"Invalid {what}: {seconds} (must be between {low} and {MAX_ACK_DEADLINE} seconds)"
        )


# --- topics -----------------------------------------------------------------------------------

_TOPIC_UPDATABLE = {
    "labels",
    "message_retention_duration",
    "message_storage_policy",
    # Updatable in the real service; refused by _check_topic_fields unless cleared.
    "schema_settings",
    "kms_key_name",
    "ingestion_data_source_settings",
    "message_transforms",
}


def _check_topic_fields(topic: Any) -> None:
    if topic.HasField("message_retention_duration"):
        seconds = seconds_of(topic.message_retention_duration)
        if not MIN_TOPIC_RETENTION <= seconds <= MAX_TOPIC_RETENTION:
            raise InvalidArgument(
                "Invalid message_retention_duration: must be 10 minutes to 31 days"
            )
    if topic.HasField("schema_settings") and topic.schema_settings.schema:
        raise unsupported("schema_settings", "schemas are")
    if topic.kms_key_name:
        raise unsupported("kms_key_name", "KMS keys are")
    if topic.HasField("ingestion_data_source_settings"):
        raise unsupported("ingestion_data_source_settings", "ingestion sources are")
    if len(topic.message_transforms) > 0:
        raise unsupported("message_transforms", "message transforms are")


def copy_field(target: Any, source: Any, path: str) -> None:
    """Replace one top-level field of ``target`` by ``source``'s, as an update mask path does."""
    field = target.DESCRIPTOR.fields_by_name[path]
    target.ClearField(path)
    value = getattr(source, path)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        getattr(target, path).update(value)
    elif field.is_repeated:
        getattr(target, path).extend(value)
    elif field.message_type is not None:
        if source.HasField(path):
            getattr(target, path).CopyFrom(value)
    else:
        setattr(target, path, value)


def _masked_update(
    current: Any, update: Any, paths: Sequence[str], updatable: Set[str], what: str
) -> Any:
    """A copy of ``current`` with the fields an update request's mask names taken from
    ``update``; a path outside ``updatable`` is refused. ``current`` is left as it was."""
    if not paths:
        raise InvalidArgument("update_mask must name at least one field")
    updated = type(current)()
    updated.CopyFrom(current)
    for path in paths:
        if path not in updatable:
            raise InvalidArgument(f"Invalid update_mask path for {what}: {path!r}")
        copy_field(updated, update, path)
    return updated


def new_topic(request: Any) -> Any:
    """A validated copy of the Topic of a CreateTopic request."""
    parse_topic(request.name)
    _check_topic_fields(request)
    topic = TopicPb()
    topic.CopyFrom(request)
    topic.state = types.Topic.State.ACTIVE
    return topic


def updated_topic(current: Any, update: Any, paths: Sequence[str]) -> Any:
    topic = _masked_update(current, update, paths, _TOPIC_UPDATABLE, "a topic")
    _check_topic_fields(topic)
    return topic


# --- subscriptions ----------------------------------------------------------------------------

_SUBSCRIPTION_UPDATABLE = {
    "ack_deadline_seconds",
    "labels",
    "retain_acked_messages",
    "message_retention_duration",
    "expiration_policy",
    "dead_letter_policy",
    "retry_policy",
    "push_config",
    # Updatable in the real service; refused by _normalise_subscription unless cleared.
    "bigquery_config",
    "cloud_storage_config",
    "bigtable_config",
    "message_transforms",
    "enable_exactly_once_delivery",
}


_EXPORTS = {
    "bigquery_config": "BigQuery subscriptions are",
    "cloud_storage_config": "Cloud Storage subscriptions are",
    "bigtable_config": "Bigtable subscriptions are",
}


def _normalise_subscription(subscription: Any, topic_exists: TopicExists) -> None:
    """Check every field and fill in the defaults the real service reports back."""
    if subscription.ack_deadline_seconds == 0:
        subscription.ack_deadline_seconds = DEFAULT_ACK_DEADLINE
    check_ack_deadline(
        subscription.ack_deadline_seconds, allow_zero=False, what="ack_deadline_seconds"
    )

    if subscription.HasField("message_retention_duration"):
        retention = seconds_of(subscription.message_retention_duration)
        if not MIN_SUBSCRIPTION_RETENTION <= retention <= MAX_SUBSCRIPTION_RETENTION:
            raise InvalidArgument(
                "Invalid message_retention_duration: must be 10 minutes to 31 days"
            )
    else:
        subscription.message_retention_duration.CopyFrom(duration(DEFAULT_SUBSCRIPTION_RETENTION))

    if not subscription.HasField("expiration_policy"):
        subscription.expiration_policy.ttl.CopyFrom(duration(DEFAULT_EXPIRATION_TTL))

    if subscription.HasField("dead_letter_policy"):
        policy = subscription.dead_letter_policy
        if not policy.dead_letter_topic:
            # An empty policy means "no dead lettering", as in the real API.
            subscription.ClearField("dead_letter_policy")
        else:
            parse_topic(policy.dead_letter_topic)
            if not topic_exists(policy.dead_letter_topic):
                raise NotFound(f"Dead letter topic not found: {policy.dead_letter_topic}")
            if policy.max_delivery_attempts == 0:
                policy.max_delivery_attempts = DEFAULT_MAX_DELIVERY_ATTEMPTS
            if not MIN_DELIVERY_ATTEMPTS <= policy.max_delivery_attempts <= MAX_DELIVERY_ATTEMPTS:
                raise InvalidArgument(
                    f"Invalid max_delivery_attempts: {policy.max_delivery_attempts} "
                    f"(must be between {MIN_DELIVERY_ATTEMPTS} and {MAX_DELIVERY_ATTEMPTS})"
                )

    if subscription.HasField("retry_policy"):
        retry = subscription.retry_policy
        if not retry.HasField("minimum_backoff"):
            retry.minimum_backoff.CopyFrom(duration(DEFAULT_MIN_BACKOFF))
        if not retry.HasField("maximum_backoff"):
            retry.maximum_backoff.CopyFrom(duration(DEFAULT_MAX_BACKOFF))
        low, high = seconds_of(retry.minimum_backoff), seconds_of(retry.maximum_backoff)
        if not 0 <= low <= MAX_BACKOFF or not 0 <= high <= MAX_BACKOFF:
            raise InvalidArgument(
                "Invalid retry_policy: backoffs must be between 0 and 600 seconds"
            )
        if low > high:
            raise InvalidArgument("Invalid retry_policy: minimum_backoff exceeds maximum_backoff")

    compile_filter(subscription.filter)

    check_push_config(subscription.push_config)
    for export, feature in _EXPORTS.items():
        if subscription.HasField(export):
            raise unsupported(export, feature)
    if len(subscription.message_transforms) > 0:
        raise unsupported("message_transforms", "message transforms are")


def new_subscription(request: Any, topic_exists: TopicExists) -> Any:
    """A validated, defaulted copy of the Subscription of a CreateSubscription request."""
    parse_subscription(request.name)
    parse_topic(request.topic)
    if not topic_exists(request.topic):
        raise NotFound(f"Topic not found: {request.topic}")
    subscription = SubscriptionPb()
    subscription.CopyFrom(request)
    subscription.detached = False
    subscription.state = types.Subscription.State.ACTIVE
    _normalise_subscription(subscription, topic_exists)
    return subscription


def updated_subscription(
    current: Any, update: Any, paths: Sequence[str], topic_exists: TopicExists
) -> Any:
    subscription = _masked_update(current, update, paths, _SUBSCRIPTION_UPDATABLE, "a subscription")
    _normalise_subscription(subscription, topic_exists)
    return subscription


def with_push_config(current: Any, push_config: Any) -> Any:
    """The subscription ``current`` with its push config replaced (ModifyPushConfig)."""
    subscription = SubscriptionPb()
    subscription.CopyFrom(current)
    subscription.push_config.CopyFrom(push_config)
    check_push_config(subscription.push_config)
    return subscription


# --- snapshots ------------------------------------------------------------------------------

_SNAPSHOT_UPDATABLE = {"labels", "expire_time"}


def updated_snapshot(current: Any, update: Any, paths: Sequence[str]) -> Any:
    return _masked_update(current, update, paths, _SNAPSHOT_UPDATABLE, "a snapshot")


# --- publishing -------------------------------------------------------------------------------


def check_publish(messages: Sequence[Any], request_bytes: int) -> None:
    """Refuse a Publish request the real service would refuse, before storing anything."""
    if not messages:
        raise InvalidArgument("A Publish request needs at least one message")
    if len(messages) > MAX_MESSAGES_PER_PUBLISH:
        raise InvalidArgument(
            f"Too many messages in one Publish request: {len(messages)} "
            f"(at most {MAX_MESSAGES_PER_PUBLISH})"
        )
    if request_bytes > MAX_PUBLISH_REQUEST_BYTES:
        raise InvalidArgument(
            f"Publish request too large: {request_bytes} bytes "
            f"(at most {MAX_PUBLISH_REQUEST_BYTES})"
        )
    for index, message in enumerate(messages):
        attributes = message.attributes
        if not message.data and len(attributes) == 0:
            raise InvalidArgument(f"Message {index} has neither data nor attributes")
        if len(message.data) > MAX_MESSAGE_DATA_BYTES:
            raise InvalidArgument(f"Message {index} data is larger than 10 MB")
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidArgument(
                f"Message {index} has {len(attributes)} attributes (at most {MAX_ATTRIBUTES})"
            )
        for key, value in attributes.items():
            if not key:
                raise InvalidArgument(f"Message {index} has an empty attribute key")
            if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
                raise InvalidArgument(
                    f"Message {index} attribute key longer than {MAX_ATTRIBUTE_KEY_BYTES} bytes"
                )
            # "goog" keys are Google's; the client libraries' own "googclient_" ones (their
            # OpenTelemetry trace context) are published to the real service every day.
            if key.startswith("goog") and not key.startswith("googclient_"):
                raise InvalidArgument(
                    f"Message {index} attribute key {key!r} starts with the reserved 'goog'"
                )
            if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
                raise InvalidArgument(
                    f"Message {index} attribute {key!r} value longer than "
                    f"{MAX_ATTRIBUTE_VALUE_BYTES} bytes"
                )
        if len(message.ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
            raise InvalidArgument(
                f"Message {index} ordering key longer than {MAX_ORDERING_KEY_BYTES} bytes"
            )
