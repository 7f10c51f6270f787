"""Google Cloud Pub/Sub provider for cloudqueue.

The local gRPC server for tests lives in :mod:`cloudqueue_pubsub.testing`.
"""
