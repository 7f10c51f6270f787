"""One error hierarchy for every provider.

Every error the library raises is a :class:`QueueError` carrying a portable
:class:`ErrorCode` and a ``retryable`` flag. Drivers translate their SDK's typed
exceptions into these classes through a table (see :func:`translate`); the
native exception stays reachable on ``__cause__`` and through :meth:`QueueError.as_`.
Cancellation (``asyncio.CancelledError``, ``KeyboardInterrupt``) is never wrapped.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from ._secrets import register_secret, register_url_secrets, scrub, scrub_exception

__all__ = [
    "AlreadyExists",
    "Closed",
    "DeadlineExceeded",
    "DecodeError",
    "ErrorCode",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "LeaseLost",
    "MessageTooLarge",
    "NotFound",
    "PayloadUnavailable",
    "PermissionDenied",
    "QueueError",
    "ResourceExhausted",
    "SendBatchError",
    "Unavailable",
    "Unknown",
    "Unsupported",
    "error_for_code",
    "register_secret",
    "register_url_secrets",
    "scrub",
    "scrub_exception",
    "translate",
]

T = TypeVar("T")

# Secrets (keys, connection strings, URL passwords) are registered as the library
# reads them and scrubbed from every error message, every native exception behind
# one and every log record: see cloudqueue._secrets and docs/errors.md.


class ErrorCode(enum.Enum):
    """Portable error codes, the same on every provider."""

    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    INVALID_ARGUMENT = "InvalidArgument"
    FAILED_PRECONDITION = "FailedPrecondition"
    PERMISSION_DENIED = "PermissionDenied"
    RESOURCE_EXHAUSTED = "ResourceExhausted"
    UNAVAILABLE = "Unavailable"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    UNSUPPORTED = "Unsupported"
    CLOSED = "Closed"
    INTERNAL = "Internal"
    UNKNOWN = "Unknown"


class QueueError(Exception):
    """Base of every error raised by cloudqueue.

    ``code`` is portable; ``retryable`` says whether trying the same call again
    may succeed. The SDK's own exception, if any, is ``__cause__``.
    """

    code: ErrorCode = ErrorCode.UNKNOWN
    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(scrub(message))
        if retryable is not None:
            self.retryable = retryable

    def __setattr__(self, name: str, value: object) -> None:
        # ``error.__cause__ = native`` (what translated() and the engine do) scrubs the
        # native exception's text in place: tracebacks print the whole chain.
        if name in ("__cause__", "__context__") and isinstance(value, BaseException):
            scrub_exception(value)
        super().__setattr__(name, value)

    def as_(self, native_type: type[T]) -> T | None:
        """The native SDK exception behind this error if it is a ``native_type``."""
        cause = self.__cause__
        return cause if isinstance(cause, native_type) else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code.value})"


class NotFound(QueueError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(QueueError):
    code = ErrorCode.ALREADY_EXISTS


class InvalidArgument(QueueError):
    code = ErrorCode.INVALID_ARGUMENT


class MessageTooLarge(InvalidArgument):
    """A message (body and attributes) or a batch exceeds the provider's limit."""


class FailedPrecondition(QueueError):
    code = ErrorCode.FAILED_PRECONDITION


class LeaseLost(FailedPrecondition):
    """A received message's lease is gone (a renewal was refused: the lock or ack id
    expired, or the connection holding it dropped). Settling it can no longer work;
    the message may be delivered again, to this consumer or another."""


class PermissionDenied(QueueError):
    code = ErrorCode.PERMISSION_DENIED


class ResourceExhausted(QueueError):
    code = ErrorCode.RESOURCE_EXHAUSTED
    retryable = True


class Unavailable(QueueError):
    code = ErrorCode.UNAVAILABLE
    retryable = True


class DeadlineExceeded(QueueError):
    code = ErrorCode.DEADLINE_EXCEEDED
    retryable = True


class Unsupported(QueueError):
    """The provider, or this destination, cannot do what was asked."""

    code = ErrorCode.UNSUPPORTED


class Closed(QueueError):
    """The producer or consumer was used after ``close()``."""

    code = ErrorCode.CLOSED


class Internal(QueueError):
    code = ErrorCode.INTERNAL


class Unknown(QueueError):
    code = ErrorCode.UNKNOWN


class PayloadUnavailable(QueueError):
    """A received message's offloaded payload (claim check) cannot be read.

    Raised when reading the body of such a message: the object is missing, its
    content does not match the digest in the pointer, the pointer lies outside
    the consumer's configured ``offload`` location, the consumer has no
    ``offload`` configured, or the store cannot be reached. The message itself
    was received and can be settled like any other. ``code`` and ``retryable``
    follow the cause (retryable when the store is down, not for a missing
    object); ``message_id`` and ``pointer`` name what was asked for.
    """

    code = ErrorCode.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        *,
        message_id: str,
        pointer: str,
        cause: QueueError | None = None,
    ) -> None:
        super().__init__(
            message, retryable=cause.retryable if cause is not None else False
        )
        self.message_id = message_id
        self.pointer = pointer
        if cause is not None:
            self.code = cause.code
            self.__cause__ = cause


class DecodeError(QueueError):
    """A message's payload does not decode into the type asked for (malformed JSON,
    a failed validation, a content type the codec cannot read).

    Never retryable: the same bytes fail the same way every time, so the worker
    dead-letters such a message at its first attempt. ``kind`` is the type asked
    for; the message names what failed, never the payload itself.
    """

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, kind: object = None) -> None:
        super().__init__(message, retryable=False)
        self.kind = kind


class SendBatchError(QueueError):
    """Some messages of a batch were not confirmed sent.

    ``results`` holds, in the order of the batch, the message id of each message
    that was sent and the :class:`QueueError` of each one that was not confirmed,
    so the caller knows exactly what to send again. A retryable error may mean the
    outcome is unknown (the connection dropped after the request left): sending
    such a message again can duplicate it, never lose it.
    """

    def __init__(self, results: list[str | QueueError]) -> None:
        failed = [r for r in results if isinstance(r, QueueError)]
        first = failed[0] if failed else None
        super().__init__(
            f"{len(failed)} of {len(results)} messages were not confirmed sent"
            + (f"; first error: {first}" if first else "")
        )
        self.results = results
        self.code = first.code if first else ErrorCode.UNKNOWN
        self.retryable = all(r.retryable for r in failed)

    @property
    def sent_ids(self) -> list[str | None]:
        """Per message: its id if it was sent, else None (not confirmed)."""
        return [r if isinstance(r, str) else None for r in self.results]


_BY_CODE: dict[ErrorCode, type[QueueError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        InvalidArgument,
        FailedPrecondition,
        PermissionDenied,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Unsupported,
        Closed,
        Internal,
        Unknown,
    )
}


def error_for_code(code: ErrorCode, message: str) -> QueueError:
    """A new error of the class that stands for ``code``."""
    return _BY_CODE[code](message)


@contextmanager
def translate(
    table: Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]],
    what: str,
) -> Iterator[None]:
    """Re-raise SDK exceptions as portable errors, looked up by type in ``table``.

    ``table`` maps an exception type to a code, or to a function of the
    exception returning one (for SDKs that carry a typed code on one exception
    class, like botocore's ``ClientError``). The first matching entry in the
    exception's MRO wins; unmatched exceptions become :class:`Unknown`.
    ``what`` names the operation for the message. Cancellation is never caught.
    """
    try:
        yield
    except QueueError:
        raise
    except Exception as exc:
        raise translated(exc, table, what) from exc


def translated(
    exc: Exception,
    table: Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]],
    what: str,
) -> QueueError:
    """The portable error for ``exc`` (see :func:`translate`), with ``exc`` as its cause.

    ``exc`` and the exceptions chained to it are scrubbed of registered secrets in place
    (see :func:`scrub_exception`): tracebacks print the cause chain.
    """
    scrub_exception(exc)
    code = ErrorCode.UNKNOWN
    for klass in type(exc).__mro__:
        entry = table.get(klass)
        if entry is not None:
            code = entry if isinstance(entry, ErrorCode) else entry(exc)
            break
    error = error_for_code(code, f"{what} failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
