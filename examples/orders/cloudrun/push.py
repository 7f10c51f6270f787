"""Cloud Run (Pub/Sub push or Eventarc): the same handler as an ASGI app."""

from orders import process_order

from cloudqueue.serverless import pubsub_push

app = pubsub_push(process_order)
