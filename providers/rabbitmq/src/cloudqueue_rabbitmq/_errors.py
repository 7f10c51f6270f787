"""aio-pika / aiormq errors to portable codes, through one table of typed exceptions.

AMQP reply codes arrive as exception classes (aiormq makes one per code): 404 not-found,
403 access-refused, 405 resource-locked, 406 precondition-failed. A lost connection or
channel is Unavailable (retryable): the next call opens a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import aiormq.exceptions as amqp
from cloudqueue.errors import ErrorCode, QueueError, translate, translated

__all__ = ["TABLE", "translate_errors", "translated_error"]

#: Exception type -> portable code. The first entry in the exception's MRO wins.
TABLE: Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {
    amqp.ChannelNotFoundEntity: ErrorCode.NOT_FOUND,  # 404
    amqp.ChannelAccessRefused: ErrorCode.PERMISSION_DENIED,  # 403
    amqp.ChannelLockedResource: ErrorCode.FAILED_PRECONDITION,  # 405 (exclusive queue)
    amqp.ChannelPreconditionFailed: ErrorCode.FAILED_PRECONDITION,  # 406
    amqp.DuplicateConsumerTag: ErrorCode.INTERNAL,
    # Any other channel close (e.g. 320 connection-forced reaching a channel): try again.
    amqp.ChannelClosed: ErrorCode.UNAVAILABLE,
    amqp.ChannelInvalidStateError: ErrorCode.UNAVAILABLE,
    amqp.ProbableAuthenticationError: ErrorCode.PERMISSION_DENIED,
    amqp.AuthenticationError: ErrorCode.PERMISSION_DENIED,
    amqp.ConnectionNotAllowed: ErrorCode.PERMISSION_DENIED,  # 530 (vhost not allowed)
    amqp.IncompatibleProtocolError: ErrorCode.FAILED_PRECONDITION,
    amqp.ConnectionResourceError: ErrorCode.RESOURCE_EXHAUSTED,  # 506
    amqp.AMQPConnectionError: ErrorCode.UNAVAILABLE,
    amqp.MethodNotImplemented: ErrorCode.UNSUPPORTED,
    ConnectionError: ErrorCode.UNAVAILABLE,
    OSError: ErrorCode.UNAVAILABLE,
    asyncio.TimeoutError: ErrorCode.DEADLINE_EXCEEDED,
}


def translate_errors(what: str) -> AbstractContextManager[None]:
    """``with translate_errors("publish to ..."):`` re-raises SDK errors as portable ones."""
    return translate(TABLE, what)


def translated_error(error: Exception, what: str) -> QueueError:
    """The portable error for ``error`` (kept as its cause), for per-entry outcomes."""
    return translated(error, TABLE, what)
