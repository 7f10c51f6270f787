"""The copy of a message that goes to a dead-letter topic.

Pub/Sub documents four attributes it adds to a forwarded message; the copy keeps data,
attributes and ordering key, and gets a new message ID and publish time when published.
"""

from __future__ import annotations

from typing import Any

from google.pubsub_v1 import types

PubsubMessagePb: Any = types.PubsubMessage.pb()


def dead_letter_copy(source: Any, delivery_attempts: int, subscription_name: str) -> Any:
    """A new PubsubMessage for the dead-letter topic of ``projects/P/subscriptions/S``."""
    _, project, _, subscription_id = subscription_name.split("/")
    message = PubsubMessagePb()
    message.data = source.data
    message.ordering_key = source.ordering_key
    message.attributes.update(source.attributes)
    message.attributes.update(
        {
            "CloudPubSubDeadLetterSourceDeliveryCount": str(delivery_attempts),
            "CloudPubSubDeadLetterSourceSubscription": subscription_id,
            "CloudPubSubDeadLetterSourceSubscriptionProject": project,
            "CloudPubSubDeadLetterSourceTopicPublishTime": source.publish_time.ToJsonString(),
        }
    )
    return message
