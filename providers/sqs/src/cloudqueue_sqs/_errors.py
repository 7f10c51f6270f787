"""botocore's typed errors and SQS, SNS and STS error codes, mapped to portable codes by table.

SQS (and likewise SNS) reports what went wrong as an error *code* (``QueueDoesNotExist``,
``AWS.SimpleQueueService.NonExistentQueue`` in the JSON protocol, ``RequestThrottled``...),
both on whole calls (botocore raises ``ClientError`` carrying it) and per entry of a batch
call (``Failed[i].Code``). One table serves both; message texts are never inspected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import botocore.exceptions as bex
from cloudqueue.errors import ErrorCode, QueueError, error_for_code

__all__ = ["CALL_ERRORS", "code_for", "entry_error"]

_E = ErrorCode

#: SQS error codes (both the JSON ``Code`` and the query-protocol ``QueryErrorCode``
#: spellings) and the portable code each one stands for.
SQS_CODES: Mapping[str, ErrorCode] = {
    # the destination
    "QueueDoesNotExist": _E.NOT_FOUND,
    "AWS.SimpleQueueService.NonExistentQueue": _E.NOT_FOUND,
    "ResourceNotFoundException": _E.NOT_FOUND,
    "QueueAlreadyExists": _E.ALREADY_EXISTS,
    "QueueNameExists": _E.ALREADY_EXISTS,
    # SQS refuses to re-create a queue for 60 s after deleting it: waiting helps.
    "QueueDeletedRecently": _E.UNAVAILABLE,
    "AWS.SimpleQueueService.QueueDeletedRecently": _E.UNAVAILABLE,
    "PurgeQueueInProgress": _E.FAILED_PRECONDITION,
    "AWS.SimpleQueueService.PurgeQueueInProgress": _E.FAILED_PRECONDITION,
    # leases: the receipt handle is stale or the message no longer in flight
    "ReceiptHandleIsInvalid": _E.FAILED_PRECONDITION,
    "MessageNotInflight": _E.FAILED_PRECONDITION,
    "AWS.SimpleQueueService.MessageNotInflight": _E.FAILED_PRECONDITION,
    # bad requests
    "InvalidParameterValue": _E.INVALID_ARGUMENT,
    "InvalidParameterValueException": _E.INVALID_ARGUMENT,
    "InvalidAttributeName": _E.INVALID_ARGUMENT,
    "InvalidAttributeValue": _E.INVALID_ARGUMENT,
    "InvalidMessageContents": _E.INVALID_ARGUMENT,
    "MissingParameter": _E.INVALID_ARGUMENT,
    "InvalidIdFormat": _E.INVALID_ARGUMENT,
    "InvalidAddress": _E.INVALID_ARGUMENT,
    "InvalidBatchEntryId": _E.INVALID_ARGUMENT,
    "AWS.SimpleQueueService.InvalidBatchEntryId": _E.INVALID_ARGUMENT,
    "BatchEntryIdsNotDistinct": _E.INVALID_ARGUMENT,
    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct": _E.INVALID_ARGUMENT,
    "TooManyEntriesInBatchRequest": _E.INVALID_ARGUMENT,
    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest": _E.INVALID_ARGUMENT,
    "EmptyBatchRequest": _E.INVALID_ARGUMENT,
    "AWS.SimpleQueueService.EmptyBatchRequest": _E.INVALID_ARGUMENT,
    "BatchRequestTooLong": _E.INVALID_ARGUMENT,
    "AWS.SimpleQueueService.BatchRequestTooLong": _E.INVALID_ARGUMENT,
    "ValidationError": _E.INVALID_ARGUMENT,
    "UnsupportedOperation": _E.UNSUPPORTED,
    "AWS.SimpleQueueService.UnsupportedOperation": _E.UNSUPPORTED,
    # quotas and throttling: retry later
    "OverLimit": _E.RESOURCE_EXHAUSTED,
    "RequestThrottled": _E.RESOURCE_EXHAUSTED,
    "ThrottlingException": _E.RESOURCE_EXHAUSTED,
    "Throttling": _E.RESOURCE_EXHAUSTED,
    "KmsThrottled": _E.RESOURCE_EXHAUSTED,
    # credentials and permissions
    "AccessDenied": _E.PERMISSION_DENIED,
    "AccessDeniedException": _E.PERMISSION_DENIED,
    "InvalidSecurity": _E.PERMISSION_DENIED,
    "InvalidClientTokenId": _E.PERMISSION_DENIED,
    "UnrecognizedClientException": _E.PERMISSION_DENIED,
    "SignatureDoesNotMatch": _E.PERMISSION_DENIED,
    "MissingAuthenticationToken": _E.PERMISSION_DENIED,
    "ExpiredToken": _E.PERMISSION_DENIED,
    "KmsAccessDenied": _E.PERMISSION_DENIED,
    "KmsDisabled": _E.FAILED_PRECONDITION,
    "KmsInvalidState": _E.FAILED_PRECONDITION,
    "KmsInvalidKeyUsage": _E.FAILED_PRECONDITION,
    "KmsNotFound": _E.FAILED_PRECONDITION,
    "KmsOptInRequired": _E.FAILED_PRECONDITION,
    # the service itself
    "ServiceUnavailable": _E.UNAVAILABLE,
    "InternalError": _E.UNAVAILABLE,
    "InternalFailure": _E.UNAVAILABLE,
    "RequestTimeout": _E.DEADLINE_EXCEEDED,
    # SNS (topics, subscriptions, PublishBatch entries); the batch-shaped codes it
    # shares with SQS (BatchEntryIdsNotDistinct, TooManyEntriesInBatchRequest...) are above.
    "NotFound": _E.NOT_FOUND,
    "NotFoundException": _E.NOT_FOUND,
    "ResourceNotFound": _E.NOT_FOUND,
    "InvalidParameter": _E.INVALID_ARGUMENT,
    "InvalidParameterException": _E.INVALID_ARGUMENT,
    "ParameterValueInvalid": _E.INVALID_ARGUMENT,
    "ValidationException": _E.INVALID_ARGUMENT,
    "InvalidBatchEntryIdException": _E.INVALID_ARGUMENT,
    "BatchEntryIdsNotDistinctException": _E.INVALID_ARGUMENT,
    "BatchRequestTooLongException": _E.INVALID_ARGUMENT,
    "EmptyBatchRequestException": _E.INVALID_ARGUMENT,
    "TooManyEntriesInBatchRequestException": _E.INVALID_ARGUMENT,
    "AuthorizationError": _E.PERMISSION_DENIED,
    "AuthorizationErrorException": _E.PERMISSION_DENIED,
    "Throttled": _E.RESOURCE_EXHAUSTED,
    "ThrottledException": _E.RESOURCE_EXHAUSTED,
    "TopicLimitExceeded": _E.RESOURCE_EXHAUSTED,
    "SubscriptionLimitExceeded": _E.RESOURCE_EXHAUSTED,
    "FilterPolicyLimitExceeded": _E.RESOURCE_EXHAUSTED,
    "EndpointDisabled": _E.FAILED_PRECONDITION,
    "InvalidState": _E.FAILED_PRECONDITION,
    "ConcurrentAccess": _E.UNAVAILABLE,
    "KMSAccessDenied": _E.PERMISSION_DENIED,
    "KMSDisabled": _E.FAILED_PRECONDITION,
    "KMSInvalidState": _E.FAILED_PRECONDITION,
    "KMSNotFound": _E.FAILED_PRECONDITION,
    "KMSOptInRequired": _E.FAILED_PRECONDITION,
    "KMSThrottling": _E.RESOURCE_EXHAUSTED,
    "InternalErrorException": _E.UNAVAILABLE,
}


def code_for(sqs_code: str, *, server_fault: bool = False) -> ErrorCode:
    """The portable code for an SQS error code; unknown server faults count as outages."""
    code = SQS_CODES.get(sqs_code)
    if code is not None:
        return code
    return _E.UNAVAILABLE if server_fault else _E.UNKNOWN


def _client_error_code(exc: BaseException) -> ErrorCode:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    for key in ("Code", "QueryErrorCode"):
        code = SQS_CODES.get(str(error.get(key) or ""))
        if code is not None:
            return code
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return _E.UNAVAILABLE if status >= 500 else _E.UNKNOWN


#: For :func:`cloudqueue.errors.translate`: botocore's exception classes, most specific
#: first in each MRO. Connection failures of every kind are outages, hence retryable.
CALL_ERRORS: Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {
    bex.ClientError: _client_error_code,
    bex.ReadTimeoutError: _E.DEADLINE_EXCEEDED,
    bex.ConnectTimeoutError: _E.UNAVAILABLE,
    bex.EndpointConnectionError: _E.UNAVAILABLE,
    bex.ConnectionClosedError: _E.UNAVAILABLE,
    bex.HTTPClientError: _E.UNAVAILABLE,
    bex.NoCredentialsError: _E.PERMISSION_DENIED,
    bex.PartialCredentialsError: _E.PERMISSION_DENIED,
    bex.CredentialRetrievalError: _E.PERMISSION_DENIED,
    bex.ProfileNotFound: _E.INVALID_ARGUMENT,
    bex.NoRegionError: _E.INVALID_ARGUMENT,
    bex.ParamValidationError: _E.INVALID_ARGUMENT,
    bex.InvalidEndpointConfigurationError: _E.INVALID_ARGUMENT,
    ConnectionError: _E.UNAVAILABLE,
}


def entry_error(what: str, failure: Mapping[str, object]) -> QueueError:
    """The portable error for one ``Failed`` entry of a batch call.

    ``SenderFault`` false means SQS itself failed on this entry: unknown codes of that kind
    are retryable outages; the caller's mistakes are not.
    """
    sqs_code = str(failure.get("Code") or "")
    server_fault = not failure.get("SenderFault", True)
    error = error_for_code(
        code_for(sqs_code, server_fault=server_fault),
        f"{what} failed for this entry: {sqs_code}: {failure.get('Message') or ''}".rstrip(": "),
    )
    return error
