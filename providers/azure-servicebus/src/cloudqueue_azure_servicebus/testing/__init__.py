"""A local Azure Service Bus broker for tests, driven by the official ``azure-servicebus`` SDK.

``ServiceBusBroker`` speaks AMQP 1.0 (on ``python-qpid-proton``'s protocol engine) the way
``azure-servicebus`` 7.x expects, plus the administration HTTP/ATOM surface, on one
loopback port::

    with ServiceBusBroker() as broker:
        broker.create_queue("orders", max_delivery_count=3)
        client = ServiceBusClient.from_connection_string(broker.connection_string)

Implemented: SASL ANONYMOUS, ``$cbs`` put-token; queues, topics with subscriptions
(fan-out), ``$DeadLetterQueue`` subqueues; single and batch sends; peek-lock and
receive-and-delete; complete/abandon/defer/dead-letter with the settlement echoes the SDK
checks; lock expiry, delivery counts, max-delivery-count dead-lettering; ``$management``
renew-lock, schedule/cancel, peek, receive-by-sequence-number, update-disposition and
session state/lock operations; sessions (named and next-available, session locks);
duplicate detection; TTL; entity max message size; scheduled messages.

What it approximates or leaves out:

* No TLS on AMQP and no real authentication: SAS tokens are accepted unchecked.
* The administration API is also served over TLS (self-signed certificate, see
  ``certificate_path``) because SDK 7.15's administration client always uses https;
  pass ``connection_verify=broker.certificate_path`` or use ``broker.administration_client()``.
* Batches are recognised by layout (every body section a ``data`` section holding an
  encoded message) because proton-C does not expose the message format 0x80013700; a
  single message built that way would be split.
* Subscriptions only have the default true filter: no SQL/correlation rules, no actions.
* No transactions, partitioning, auto-forwarding, auto-delete-on-idle, quotas (entity
  size), or geo features; a session-less message sent to a topic is dropped for
  sessionful subscriptions.
* Within a session, message locks follow the session lock; closing a session receiver
  returns its unsettled messages (delivery count + 1).
* State lives in memory and is lost on stop.
"""

from ._broker import ServiceBusBroker

__all__ = ["ServiceBusBroker"]
