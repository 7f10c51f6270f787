"""Google API errors to portable error codes, through one table.

The client raises ``google.api_core.exceptions.GoogleAPICallError`` subclasses, one per gRPC
status code; a bare ``grpc.RpcError`` can still escape from a channel, so it is mapped by its
status code as well. Anything else becomes ``Unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import grpc
from cloudqueue.errors import ErrorCode, QueueError, translate, translated
from google.api_core import exceptions as api
from google.auth import exceptions as auth

__all__ = ["TABLE", "translate_errors", "translated_error"]

_BY_STATUS: dict[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.ALREADY_EXISTS,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.UNAVAILABLE,
    # Aborted and cancelled-by-the-server calls are worth another try, like Unavailable.
    grpc.StatusCode.ABORTED: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED: ErrorCode.UNSUPPORTED,
    grpc.StatusCode.INTERNAL: ErrorCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS: ErrorCode.INTERNAL,
    grpc.StatusCode.UNKNOWN: ErrorCode.UNKNOWN,
}


def _by_rpc_status(error: BaseException) -> ErrorCode:
    code = error.code() if isinstance(error, grpc.Call) else None
    return _BY_STATUS.get(code, ErrorCode.UNKNOWN) if code is not None else ErrorCode.UNAVAILABLE


#: Exception type -> portable code. The first entry in the exception's MRO wins.
TABLE: Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {
    api.NotFound: ErrorCode.NOT_FOUND,
    api.AlreadyExists: ErrorCode.ALREADY_EXISTS,
    api.Conflict: ErrorCode.ALREADY_EXISTS,
    api.InvalidArgument: ErrorCode.INVALID_ARGUMENT,
    api.OutOfRange: ErrorCode.INVALID_ARGUMENT,
    api.FailedPrecondition: ErrorCode.FAILED_PRECONDITION,
    api.PermissionDenied: ErrorCode.PERMISSION_DENIED,
    api.Unauthenticated: ErrorCode.PERMISSION_DENIED,
    api.Unauthorized: ErrorCode.PERMISSION_DENIED,
    api.Forbidden: ErrorCode.PERMISSION_DENIED,
    api.ResourceExhausted: ErrorCode.RESOURCE_EXHAUSTED,
    api.TooManyRequests: ErrorCode.RESOURCE_EXHAUSTED,
    api.ServiceUnavailable: ErrorCode.UNAVAILABLE,
    api.Aborted: ErrorCode.UNAVAILABLE,
    api.Cancelled: ErrorCode.UNAVAILABLE,
    api.RetryError: ErrorCode.UNAVAILABLE,
    api.DeadlineExceeded: ErrorCode.DEADLINE_EXCEEDED,
    api.GatewayTimeout: ErrorCode.DEADLINE_EXCEEDED,
    api.MethodNotImplemented: ErrorCode.UNSUPPORTED,
    api.InternalServerError: ErrorCode.INTERNAL,
    api.DataLoss: ErrorCode.INTERNAL,
    api.Unknown: ErrorCode.UNKNOWN,
    auth.DefaultCredentialsError: ErrorCode.PERMISSION_DENIED,
    auth.RefreshError: ErrorCode.PERMISSION_DENIED,
    auth.TransportError: ErrorCode.UNAVAILABLE,
    grpc.RpcError: _by_rpc_status,
}


def translate_errors(what: str) -> AbstractContextManager[None]:
    """``with translate_errors("publish to ..."):`` re-raises SDK errors as portable ones."""
    return translate(TABLE, what)


def translated_error(error: Exception, what: str) -> QueueError:
    """The portable error for ``error`` (kept as its cause), for per-entry outcomes."""
    return translated(error, TABLE, what)
