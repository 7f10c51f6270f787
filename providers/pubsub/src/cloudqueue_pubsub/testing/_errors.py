"""Errors raised by the in-memory state, each carrying the gRPC status it maps to.

The state modules raise these instead of talking to gRPC so that they stay testable and free
of transport concerns; ``_service`` turns them into ``context.abort`` calls.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A request the real service would refuse, with the status code it would use."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class AckIdFailures(InvalidArgument):
    """Exactly-once delivery: some ack IDs of a request did not acknowledge or modify anything.

    The real service answers INVALID_ARGUMENT with a google.rpc.ErrorInfo detail whose
    metadata maps each failed ack ID to its reason; the client libraries read that map.
    """

    REASON = "EXACTLY_ONCE_ACKID_FAILURE"
    INVALID_ACK_ID = "PERMANENT_FAILURE_INVALID_ACK_ID"

    def __init__(self, failures: dict[str, str]) -> None:
        super().__init__(
            "Some acknowledgement ids in the request were invalid. This could be because the "
            "acknowledgement ids have expired or the acknowledgement ids were malformed."
        )
        self.failures = failures


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


def unsupported(field: str, feature: str) -> Unimplemented:
    """The one refusal for a feature this server lacks, the same on every RPC that sets it."""
    return Unimplemented(f"{field}: {feature} not supported by this local Pub/Sub server")
