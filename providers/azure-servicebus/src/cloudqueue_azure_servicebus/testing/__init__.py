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
duplicate detection; TTL; entity max message size; scheduled messages; subscription rules
(``$Default``; SQL filters with the documented SQL-92 subset and three-valued logic,
correlation, true and false filters; SET/REMOVE rule actions on user properties, each
yielding its own copy with ``RuleName``) and rule CRUD; auto-forwarding (``forward_to``,
``forward_dead_lettered_messages_to``, at most 4 hops, then dead-lettered);
auto-delete-on-idle (its clock scaled by ``idle_time_scale``); ``get_namespace_properties``;
runtime counts as the service reports them (active counts locked and deferred messages;
scheduled messages of a topic counted once, by the topic, not by its subscriptions);
peek by sequence number that shows locked, deferred and (on queues) scheduled messages and
counts no delivery;
AMQP over WebSockets (``ws://`` and, with ``connection_verify``, ``wss://``) on the same port
at ``/$servicebus/websocket`` (pass ``custom_endpoint_address=broker.custom_endpoint_address``);
concurrent transfers that reuse a delivery-id (the SDK's ``AutoLockRenewer`` and concurrent
lock renewals), accepted as the service does; refused links answered with a null terminus
and a detach, so the SDK raises ``OperationTimeoutError`` / ``SessionCannotBeLockedError`` /
not-found from opening a receiver or sender.

What it approximates or leaves out:

* No TLS on AMQP. Tokens are accepted unchecked unless the broker is started with
  ``require_valid_tokens=True``: then ``$cbs`` put-token and the administration surface
  check shared access signatures against the namespace's one key and bearer tokens against
  the broker's own issuer (``token_credential()``, compact HS256 JWTs, not Entra ID).
  Even then a token's resource is not compared with the entity a link names, and no token
  carries rights: a valid token may send, listen and manage everything.
* The administration API is also served over TLS (self-signed certificate, see
  ``certificate_path``) because SDK 7.15's administration client always uses https;
  pass ``connection_verify=broker.certificate_path`` or use ``broker.administration_client()``.
* Batches are recognised by layout (every body section a ``data`` section holding an
  encoded message) because proton-C does not expose the message format 0x80013700; a
  single message built that way would be split.
* SQL filters: values C# would not compare (a string with a number, ordered booleans) and
  division by zero evaluate to unknown instead of raising a filter exception, so
  ``dead_lettering_on_filter_evaluation_exceptions`` is stored but never used; string
  comparison and LIKE are ordinal (case-sensitive); ``newid()``, ``property()`` and rule
  actions on ``sys.`` properties are refused with HTTP 400; filters are evaluated when a
  message is sent, scheduled ones included.
* No transactions, partitioning, express entities, disabled status, per-entity
  authorization rules or geo features: asking for them is refused with HTTP 400 naming the
  option. ``max_size_in_megabytes`` (the quota is not enforced), ``enable_batched_operations``,
  ``support_ordering`` and ``user_metadata`` are stored and reported only. A session-less
  message sent to a topic is dropped for sessionful subscriptions.
* Auto-delete-on-idle counts sends, receives, settlements, peeks, attached receivers, updates
  and rule changes as activity; a topic also stays while its subscriptions are read.
* Runtime counts are exact at the moment of the request (the service's lag by seconds).
  Transfer and transfer-dead-letter counts are always 0: the broker forwards at once, and a
  message it cannot forward goes to the entity's ``$DeadLetterQueue`` (the service uses the
  transfer dead-letter subqueue, which the broker does not serve). A scheduled topic message
  that no subscription's rules accept is not counted by the topic (rules run at send time).
* Namespace properties: the name is the host; the SKU is Standard (Premium with 1 messaging
  unit when ``sku="Premium"``); created and modified at broker start.
* WebSocket: no extensions (permessage-deflate is not negotiated); messages over 4 MiB are
  refused (close 1009).
* Errors that proton-C itself raises (malformed frames) close the connection without the
  ``info`` map the service sends.
* Within a session, message locks follow the session lock; closing a session receiver
  returns its unsettled messages (delivery count + 1).
* State lives in memory and is lost on stop.
"""

from ._broker import ServiceBusBroker

__all__ = ["ServiceBusBroker"]
