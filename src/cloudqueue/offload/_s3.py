"""``s3://bucket/prefix``: payloads as objects of an S3 bucket, through boto3.

The client comes from boto3's own configuration (credential chain, region,
``AWS_ENDPOINT_URL_S3`` for LocalStack or MinIO), is made on first use (making it
resolves credentials, which can mean asking the instance metadata service) and is
then shared by every thread. Retries are bounded (3 attempts, short timeouts to
connect) so that a store that is down fails a send in seconds, as a retryable error
the engine can retry, rather than inside the SDK for minutes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import ErrorCode, Unsupported, register_secret
from ._object_store import ErrorTable, ObjectStore

__all__ = ["S3Store"]

# Bucket names as S3 creates them today (3-63 characters; no uppercase or underscores).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

_E = ErrorCode

#: S3 error codes (``ClientError.response["Error"]["Code"]``), looked up before the HTTP status.
_S3_CODES: Mapping[str, ErrorCode] = {
    "NoSuchKey": _E.NOT_FOUND,
    "NotFound": _E.NOT_FOUND,
    "404": _E.NOT_FOUND,
    "NoSuchBucket": _E.NOT_FOUND,
    "AccessDenied": _E.PERMISSION_DENIED,
    "AllAccessDisabled": _E.PERMISSION_DENIED,
    "AccountProblem": _E.PERMISSION_DENIED,
    "InvalidAccessKeyId": _E.PERMISSION_DENIED,
    "SignatureDoesNotMatch": _E.PERMISSION_DENIED,
    "ExpiredToken": _E.PERMISSION_DENIED,
    "InvalidToken": _E.PERMISSION_DENIED,
    "403": _E.PERMISSION_DENIED,
    "InvalidBucketName": _E.INVALID_ARGUMENT,
    "KeyTooLongError": _E.INVALID_ARGUMENT,
    "EntityTooLarge": _E.INVALID_ARGUMENT,
    "InvalidArgument": _E.INVALID_ARGUMENT,
    "SlowDown": _E.RESOURCE_EXHAUSTED,
    "Throttling": _E.RESOURCE_EXHAUSTED,
    "ThrottlingException": _E.RESOURCE_EXHAUSTED,
    "RequestLimitExceeded": _E.RESOURCE_EXHAUSTED,
    "TooManyRequests": _E.RESOURCE_EXHAUSTED,
    "ServiceUnavailable": _E.UNAVAILABLE,
    "InternalError": _E.UNAVAILABLE,
    "RequestTimeout": _E.DEADLINE_EXCEEDED,
}


def _client_error_code(exc: BaseException) -> ErrorCode:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    code = _S3_CODES.get(str((response.get("Error") or {}).get("Code") or ""))
    if code is not None:
        return code
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    if status == 429:
        return _E.RESOURCE_EXHAUSTED
    return _E.UNAVAILABLE if status >= 500 else _E.UNKNOWN


def _errors() -> ErrorTable:
    import botocore.exceptions as bex  # type: ignore[import-untyped]

    return {
        bex.ClientError: _client_error_code,
        bex.ReadTimeoutError: _E.DEADLINE_EXCEEDED,
        bex.ConnectTimeoutError: _E.UNAVAILABLE,
        bex.EndpointConnectionError: _E.UNAVAILABLE,
        bex.ConnectionClosedError: _E.UNAVAILABLE,
        bex.HTTPClientError: _E.UNAVAILABLE,
        bex.ResponseStreamingError: _E.UNAVAILABLE,
        bex.NoCredentialsError: _E.PERMISSION_DENIED,
        bex.PartialCredentialsError: _E.PERMISSION_DENIED,
        bex.CredentialRetrievalError: _E.PERMISSION_DENIED,
        bex.ProfileNotFound: _E.INVALID_ARGUMENT,
        bex.NoRegionError: _E.INVALID_ARGUMENT,
        bex.ParamValidationError: _E.INVALID_ARGUMENT,
        bex.InvalidEndpointConfigurationError: _E.INVALID_ARGUMENT,
        ConnectionError: _E.UNAVAILABLE,
    }


class S3Store(ObjectStore):
    scheme: ClassVar[str] = "s3"

    @classmethod
    def open(cls, location: str) -> S3Store:
        bucket, prefix = cls._parse(location)
        try:
            import boto3  # type: ignore[import-untyped]  # noqa: F401 - here, so a missing SDK fails at open
        except ImportError as error:
            raise Unsupported(
                "the s3:// payload store needs boto3: pip install 'cloudqueue[offload-s3]'"
            ) from error
        return cls(bucket, prefix)

    @property
    def bucket(self) -> str:
        return self._bucket_name

    @classmethod
    def _error_table(cls) -> ErrorTable:
        return _errors()

    @classmethod
    def _bucket_problem(cls, bucket: str) -> str | None:
        if _BUCKET.fullmatch(bucket) and ".." not in bucket:
            return None
        return (
            "an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit)"
        )

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config  # type: ignore[import-untyped]

        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is not None:
            # Registered before the first request, so that nothing the SDK logs or raises shows them.
            frozen = credentials.get_frozen_credentials()
            for secret in (frozen.secret_key, frozen.token):
                if secret:
                    register_secret(secret)
        config = Config(
            retries={"total_max_attempts": 3, "mode": "standard"},
            connect_timeout=3,
            read_timeout=60,
            max_pool_connections=16,  # uploads of one batch run a few at a time
        )
        return session.client("s3", config=config)

    def _close_client(self, client: Any) -> None:
        client.close()

    def _upload(self, client: Any, name: str, data: bytes) -> None:
        client.put_object(Bucket=self._bucket_name, Key=name, Body=data)

    def _download(self, client: Any, name: str) -> bytes:
        body: bytes = client.get_object(Bucket=self._bucket_name, Key=name)["Body"].read()
        return body

    def _remove(self, client: Any, name: str) -> None:
        # S3 answers 204 for a key that is not there: a missing object is not an error (a
        # NotFound here means the bucket is missing, a misconfiguration to report).
        client.delete_object(Bucket=self._bucket_name, Key=name)
