"""The table from Azure SDK exceptions to portable error codes.

Matched by type (most specific class first through the MRO, see
:func:`cloudqueue.errors.translate`), never by message text.

Connection-level failures are ``Unavailable`` (retryable): the SDK raises
``ServiceBusConnectionError``/``ServiceBusCommunicationError`` for them, or a plain
``ServiceBusError`` ("Handler failed") wrapping the transport's own exception, which
is then translated by the type of that wrapped exception.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping

from azure.core import exceptions as core
from azure.servicebus import exceptions as sb
from cloudqueue.errors import ErrorCode

__all__ = ["ERRORS"]


def _by_wrapped(exc: BaseException) -> ErrorCode:
    """A ``ServiceBusError`` of no more specific class: the code of the exception it
    wraps (``inner_exception``, public on every ``AzureError``), e.g. a socket error
    the SDK reports as "Handler failed". The SDK's own retry verdict on it is private
    (``_retryable``), so it is not consulted; nothing wrapped means ``Unknown``."""
    seen: set[int] = set()
    inner = getattr(exc, "inner_exception", None)
    while isinstance(inner, BaseException) and id(inner) not in seen:
        seen.add(id(inner))
        for klass in type(inner).__mro__:
            entry = ERRORS.get(klass)
            if entry is None:
                continue
            if entry is _by_wrapped:  # a plain ServiceBusError inside another: look deeper
                break
            return entry if isinstance(entry, ErrorCode) else entry(inner)
        inner = getattr(inner, "inner_exception", None)
    return ErrorCode.UNKNOWN


def _by_status(exc: BaseException) -> ErrorCode:
    status = getattr(exc, "status_code", None) or 0
    if status in (401, 403):
        return ErrorCode.PERMISSION_DENIED
    if status == 404:
        return ErrorCode.NOT_FOUND
    if status == 409:
        return ErrorCode.ALREADY_EXISTS
    if status in (400, 413):
        return ErrorCode.INVALID_ARGUMENT
    if status == 429:
        return ErrorCode.RESOURCE_EXHAUSTED
    if status >= 500:
        return ErrorCode.UNAVAILABLE
    return ErrorCode.UNKNOWN


ERRORS: Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {
    # AMQP data plane
    sb.MessagingEntityNotFoundError: ErrorCode.NOT_FOUND,
    sb.MessagingEntityAlreadyExistsError: ErrorCode.ALREADY_EXISTS,
    sb.MessagingEntityDisabledError: ErrorCode.FAILED_PRECONDITION,
    sb.MessageSizeExceededError: ErrorCode.INVALID_ARGUMENT,
    sb.MessageLockLostError: ErrorCode.FAILED_PRECONDITION,
    sb.SessionLockLostError: ErrorCode.FAILED_PRECONDITION,
    sb.MessageAlreadySettled: ErrorCode.FAILED_PRECONDITION,
    sb.MessageNotFoundError: ErrorCode.NOT_FOUND,
    sb.SessionCannotBeLockedError: ErrorCode.UNAVAILABLE,
    sb.ServiceBusAuthenticationError: ErrorCode.PERMISSION_DENIED,
    sb.ServiceBusAuthorizationError: ErrorCode.PERMISSION_DENIED,
    sb.ServiceBusQuotaExceededError: ErrorCode.RESOURCE_EXHAUSTED,
    sb.ServiceBusServerBusyError: ErrorCode.UNAVAILABLE,
    sb.ServiceBusConnectionError: ErrorCode.UNAVAILABLE,
    sb.ServiceBusCommunicationError: ErrorCode.UNAVAILABLE,
    sb.OperationTimeoutError: ErrorCode.DEADLINE_EXCEEDED,
    sb.ServiceBusError: _by_wrapped,
    # administration (HTTP) and credentials
    core.ResourceNotFoundError: ErrorCode.NOT_FOUND,
    core.ResourceExistsError: ErrorCode.ALREADY_EXISTS,
    core.ClientAuthenticationError: ErrorCode.PERMISSION_DENIED,
    core.ServiceRequestError: ErrorCode.UNAVAILABLE,
    core.ServiceResponseError: ErrorCode.UNAVAILABLE,
    core.HttpResponseError: _by_status,
    core.AzureError: ErrorCode.UNKNOWN,
    # the transport's own, raised bare or wrapped in a plain ServiceBusError
    ConnectionError: ErrorCode.UNAVAILABLE,  # reset, refused, aborted, broken pipe
    socket.gaierror: ErrorCode.UNAVAILABLE,  # name resolution, usually transient
    TimeoutError: ErrorCode.DEADLINE_EXCEEDED,  # socket.timeout too
}
