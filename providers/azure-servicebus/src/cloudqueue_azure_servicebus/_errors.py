"""The table from Azure SDK exceptions to portable error codes.

Matched by type (most specific class first through the MRO, see
:func:`cloudqueue.errors.translate`), never by message text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from azure.core import exceptions as core
from azure.servicebus import exceptions as sb
from cloudqueue.errors import ErrorCode

__all__ = ["ERRORS"]


def _by_retryable(exc: BaseException) -> ErrorCode:
    # ServiceBusError carries the SDK's own verdict on whether a retry can help.
    return ErrorCode.UNAVAILABLE if getattr(exc, "retryable", False) else ErrorCode.UNKNOWN


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
    sb.ServiceBusError: _by_retryable,
    # administration (HTTP) and credentials
    core.ResourceNotFoundError: ErrorCode.NOT_FOUND,
    core.ResourceExistsError: ErrorCode.ALREADY_EXISTS,
    core.ClientAuthenticationError: ErrorCode.PERMISSION_DENIED,
    core.ServiceRequestError: ErrorCode.UNAVAILABLE,
    core.ServiceResponseError: ErrorCode.UNAVAILABLE,
    core.HttpResponseError: _by_status,
    core.AzureError: ErrorCode.UNKNOWN,
}
