"""Google Cloud Pub/Sub provider for cloudqueue.

:class:`PubSubSdk` passes your own credentials, client options or clients as ``sdk=``.
The local gRPC server for tests lives in :mod:`cloudqueue_pubsub.testing`.
"""

from ._sdk import PubSubSdk

__all__ = ["PubSubSdk"]
