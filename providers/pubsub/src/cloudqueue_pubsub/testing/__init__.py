"""A local Google Cloud Pub/Sub server for tests, speaking Pub/Sub's gRPC API.

Point the official ``google-cloud-pubsub`` client at it with ``PUBSUB_EMULATOR_HOST``::

    from cloudqueue_pubsub.testing import PubSubServer

    with PubSubServer() as server:              # 127.0.0.1, a free port
        os.environ["PUBSUB_EMULATOR_HOST"] = server.address
        ...                                     # PublisherClient(), SubscriberClient()
        server.request_counts()                 # {"Publish": 10, "Pull": 11, ...}

or run it as a process: ``python -m cloudqueue_pubsub.testing --port 8085``.

What it implements: topics and subscriptions (create, get, update, list, delete, list a topic's
subscriptions), Publish, Pull, StreamingPull, Acknowledge, ModifyAckDeadline, ack-deadline
expiry and redelivery, ordering keys, dead-letter policies, retry policies, attribute filters,
push subscriptions (ModifyPushConfig too), snapshots (create, get, update, list, delete), Seek
to a time or a snapshot, ``retain_acked_messages``, subscription and topic message retention,
exactly-once delivery, with the documented limits and gRPC status codes.

What it approximates or leaves out, compared with the real service:

- State lives in memory in one process; nothing persists, nothing is replicated.
- ``delivery_attempt`` is exact (the real service only promises best effort), and a message is
  forwarded to the dead-letter topic as soon as its last allowed attempt is nacked or expires.
- Ordering keys follow Google's documentation (details in ``_delivery``): a response may carry
  several messages of one key, in publish order; while a key has outstanding messages, its
  later ones go only to the same StreamingPull stream (after a unary Pull, to nobody until
  they are settled or expired); a nack or an expiry redelivers the failed message and every
  later message of its key already delivered, acknowledged ones included, in publish order; a
  message dead-lettered on its last attempt leaves its key without that rewind. Which stream
  gets a key next is first come, first served (the real service balances keys across streams),
  and the rewind is exact where the real service may also redeliver a key's messages on its
  own (server restarts, rebalancing).
- Retry backoff is exactly ``min(maximum, minimum * 2 ** (attempt - 1))``; the real service
  treats the backoff as a hint.
- Push (details in ``_push_config``): only to loopback endpoints (127.0.0.0/8, ::1,
  localhost; anything else is INVALID_ARGUMENT); wrapped (JSON) and ``no_wrapper`` payloads,
  with ``write_metadata`` headers; 102, 200, 201, 202 and 204 acknowledge, any other status,
  a redirect, a connection error or no answer within the ack deadline nacks. Without a retry
  policy a failed message waits out a push backoff of ``min(60 s, 100 ms * 2 ** (attempt -
  1))`` (``PubSubServer(push_backoff=...)`` changes the bounds); the real service applies its
  push backoff to the whole subscription and adapts the number of requests in flight to the
  endpoint's success rate, where this server backs off per message and keeps at most 16
  requests in flight per subscription. A key has one push outstanding at a time. Pull and
  StreamingPull on a push subscription answer FAILED_PRECONDITION. Authenticated push
  (``oidc_token``) and the ``v1beta1`` payload are refused with UNIMPLEMENTED.
- Retention is enforced lazily: an expired message is dropped when it would be delivered, and
  a subscription's history (what Seek replays) is trimmed from its oldest end when messages
  are published, so acknowledged messages behind an unacknowledged one use memory until it
  goes. Seek cancels every outstanding lease (the old ack IDs acknowledge nothing); delivery
  attempts keep counting across a Seek. Topic retention is replayed by Seek to a time, not to
  snapshots. A snapshot keeps every message published to its topic after its creation until
  it is deleted or expires (no storage limit); it expires exactly seven days after its oldest
  unacknowledged message. Expiration policies are stored but have no effect.
- Exactly-once delivery: an ack ID is valid while its lease lasts (until acknowledged, nacked,
  expired, or ended by a Seek); Acknowledge and ModifyAckDeadline apply the valid IDs of a
  request and answer INVALID_ARGUMENT with an ``EXACTLY_ONCE_ACKID_FAILURE`` ErrorInfo naming
  each other one as ``PERMANENT_FAILURE_INVALID_ACK_ID``, and StreamingPull responses say
  ``exactly_once_delivery_enabled``. Acks sent on the StreamingPull stream itself cannot report
  failures (the client libraries send them as unary calls with exactly-once delivery), and no
  ``TRANSIENT_FAILURE_*`` is ever produced: nothing here is transient. A message is never
  delivered twice while a lease is valid, as without exactly-once delivery.
- Flow control on StreamingPull counts messages and bytes leased on that stream; leases outlive
  a closed stream until their deadline, as in the real service.
- A Pull without ``return_immediately`` waits at most ``pull_wait_seconds`` (2 s by default)
  for a message, then returns an empty response.
- Not supported, refused with UNIMPLEMENTED naming the field on every RPC that sets it:
  BigQuery/Cloud Storage/Bigtable subscriptions, message transforms
  (topic and subscription), schemas, KMS keys, ingestion sources. Methods it does not have
  (DetachSubscription, the SchemaService, IAM) answer UNIMPLEMENTED naming the method.
- Authentication: none by default. ``PubSubServer(bearer_token=...)`` accepts only calls
  carrying ``authorization: Bearer <that token>`` (UNAUTHENTICATED otherwise) and then listens
  with gRPC local credentials (plain TCP on loopback) instead of Google's TLS; the token is
  compared as an opaque string (no OAuth validation, expiry, scopes or IAM roles). The server
  refuses to listen on non-loopback addresses.
"""

from .server import PubSubServer

__all__ = ["PubSubServer"]
