"""cloudqueue: one Producer/Consumer API, sync and asyncio, over many queue services.

Switch backends by changing one URL::

    import cloudqueue

    with cloudqueue.open_producer("memory://orders") as producer:
        producer.send(b"payload", attributes={"kind": "created"})

    with cloudqueue.open_consumer("memory://orders") as consumer:
        for message in consumer.receive(max_messages=10, wait=5.0):
            message.ack()
"""

from . import aio, codecs, filters, offload, ops
from ._api import (
    capabilities,
    dead_letter_url,
    declare,
    delete,
    open_consumer,
    open_producer,
    purge,
)
from ._engine.retry import RetryPolicy
from ._message import Message
from ._received import AsyncReceivedMessage, ReceivedMessage
from ._registry import plugin_manager
from ._sdk import SdkObjects
from ._settlement import Settlement
from ._sync import Consumer, Producer
from .aio import AsyncConsumer, AsyncProducer
from .driver import Capabilities, Limits
from .errors import (
    AlreadyExists,
    Closed,
    DeadlineExceeded,
    DecodeError,
    ErrorCode,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    LeaseLost,
    MessageTooLarge,
    NotFound,
    PayloadUnavailable,
    PermissionDenied,
    QueueError,
    ResourceExhausted,
    SendBatchError,
    Unavailable,
    Unknown,
    Unsupported,
)
from .filters import where
from .hookspecs import hookimpl
from .offload import Offload

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AsyncConsumer",
    "AsyncProducer",
    "AsyncReceivedMessage",
    "Capabilities",
    "Closed",
    "Consumer",
    "DeadlineExceeded",
    "DecodeError",
    "ErrorCode",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "LeaseLost",
    "Limits",
    "Message",
    "MessageTooLarge",
    "NotFound",
    "Offload",
    "PayloadUnavailable",
    "PermissionDenied",
    "Producer",
    "QueueError",
    "ReceivedMessage",
    "ResourceExhausted",
    "RetryPolicy",
    "SdkObjects",
    "SendBatchError",
    "Settlement",
    "Unavailable",
    "Unknown",
    "Unsupported",
    "aio",
    "capabilities",
    "codecs",
    "dead_letter_url",
    "declare",
    "delete",
    "filters",
    "hookimpl",
    "offload",
    "open_consumer",
    "open_producer",
    "ops",
    "plugin_manager",
    "purge",
    "where",
]
