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
expiry and redelivery, ordering keys, dead-letter policies, retry policies and attribute
filters, with the documented limits and gRPC status codes.

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
- Retention is enforced lazily, when a message would be delivered; ``retain_acked_messages``,
  topic retention and expiration policies are stored but have no effect.
- Flow control on StreamingPull counts messages and bytes leased on that stream; leases outlive
  a closed stream until their deadline, as in the real service.
- A Pull without ``return_immediately`` waits at most ``pull_wait_seconds`` (2 s by default)
  for a message, then returns an empty response.
- Not supported: exactly-once delivery, push/BigQuery/Cloud Storage subscriptions, snapshots and
  Seek, schemas, message transforms, KMS, IAM and authentication, DetachSubscription. Requests
  for them fail with UNIMPLEMENTED. The server refuses to listen on non-loopback addresses.
"""

from .server import PubSubServer

__all__ = ["PubSubServer"]
