"""Large payloads by claim check: bodies over a threshold go to a payload store,
and a small pointer is sent in their place. See docs/large-messages.md.

Configure with ``open_producer(url, offload=Offload("s3://bucket/prefix"))`` (and
``open_consumer``, and :mod:`cloudqueue.aio`), or with the URL parameters
``offload=<location>``, ``offload_threshold=<bytes>`` and ``offload_delete=true``.
Payload stores are plugins (:class:`PayloadStore`, registered through the
``cloudqueue_payload_stores`` hook).
"""

from ._config import Offload
from ._pointer import (
    AWS_LEGACY_POINTER_CLASS,
    AWS_LEGACY_SIZE_ATTRIBUTE,
    AWS_POINTER_CLASS,
    AWS_SIZE_ATTRIBUTE,
    PAYLOAD_ATTRIBUTE,
)
from ._store import PayloadStore, open_store, store_classes

__all__ = [
    "AWS_LEGACY_POINTER_CLASS",
    "AWS_LEGACY_SIZE_ATTRIBUTE",
    "AWS_POINTER_CLASS",
    "AWS_SIZE_ATTRIBUTE",
    "PAYLOAD_ATTRIBUTE",
    "Offload",
    "PayloadStore",
    "open_store",
    "store_classes",
]
