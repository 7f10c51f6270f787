"""CloudEvents 1.0 over every provider, in binary and structured mode.

::

    from cloudqueue.cloudevents import CloudEvent, CloudEventCodec

    event = CloudEvent({"type": "com.example.order.placed", "source": "/shop"}, {"id": 7})
    with cloudqueue.open_producer("pubsub://proj/orders") as producer:
        producer.send(event)                      # binary: ce-* attributes on Pub/Sub
    ...
    event = message.decode(CloudEvent)            # either mode, any binding

Bindings: the AMQP binding on Service Bus (``cloudEvents_*`` application properties and
the native content type), Google's Pub/Sub binding (``ce-*`` attributes,
``content-type``), and on SQS, SNS, memory and SQLite structured mode by default with the
``ce-*`` naming for binary. The event type is the ``cloudevents`` SDK's (2.x, extra
``cloudqueue[cloudevents]``). See docs/cloudevents.md.
"""

from __future__ import annotations

from cloudevents.core.v1.event import CloudEvent

from ._bindings import (
    AMQP_PREFIX,
    CE_PREFIX,
    STRUCTURED_CONTENT_TYPE,
    Binding,
    Mode,
    binding_for,
    is_cloudevent,
)
from ._codec import CloudEventCodec, from_received, to_message

__all__ = [
    "AMQP_PREFIX",
    "CE_PREFIX",
    "STRUCTURED_CONTENT_TYPE",
    "Binding",
    "CloudEvent",
    "CloudEventCodec",
    "Mode",
    "binding_for",
    "from_received",
    "is_cloudevent",
    "to_message",
]
