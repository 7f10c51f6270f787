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
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..errors import ErrorCode, InvalidArgument, Unsupported, register_secret, translate
from ._store import PayloadStore

__all__ = ["S3Store"]

# Bucket names as S3 creates them today (3-63 characters; no uppercase or underscores).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One segment of an object name: no empty, "." or ".." segments, which a path-style URL
# (LocalStack, proxies) could normalize into another object.
_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9!_.*'()-]+")
_MAX_OBJECT_NAME = 1024  # bytes, S3's limit on a key

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


def _errors() -> Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]]:
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


class S3Store(PayloadStore):
    scheme: ClassVar[str] = "s3"

    def __init__(self, bucket: str, prefix: str) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._lock = threading.Lock()
        self._s3: Any = None
        self._table = _errors()

    @classmethod
    def open(cls, location: str) -> S3Store:
        bucket, prefix = _parse(location)
        try:
            import boto3  # type: ignore[import-untyped]  # noqa: F401 - here, so a missing SDK fails at open
        except ImportError as error:
            raise Unsupported(
                "the s3:// payload store needs boto3: pip install 'cloudqueue[offload-s3]'"
            ) from error
        return cls(bucket, prefix)

    @property
    def location(self) -> str:
        return self._location

    @property
    def bucket(self) -> str:
        return self._bucket

    def put(self, key: str, data: bytes) -> str:
        name = self._object_name(key)
        uri = f"s3://{self._bucket}/{name}"
        with translate(self._table, f"writing payload {uri}"):
            self._client().put_object(Bucket=self._bucket, Key=name, Body=data)
        return uri

    def get(self, uri: str) -> bytes:
        name = self._name_of(uri)
        with translate(self._table, f"reading payload {uri}"):
            body: bytes = self._client().get_object(Bucket=self._bucket, Key=name)["Body"].read()
            return body

    def delete(self, uri: str) -> None:
        name = self._name_of(uri)
        # S3 answers 204 for a key that is not there: a missing object is not an error.
        with translate(self._table, f"deleting payload {uri}"):
            self._client().delete_object(Bucket=self._bucket, Key=name)

    def contains(self, uri: str) -> bool:
        return super().contains(uri) and _valid_name(uri[len(f"s3://{self._bucket}/") :])

    def close(self) -> None:
        with self._lock:
            client, self._s3 = self._s3, None
        if client is not None:
            client.close()

    def _client(self) -> Any:
        with self._lock:
            if self._s3 is None:
                self._s3 = self._new_client()
            return self._s3

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

    def _object_name(self, key: str) -> str:
        name = f"{self._prefix}/{key}" if self._prefix else key
        if not isinstance(key, str) or not _valid_name(key) or not _valid_name(name):
            raise InvalidArgument(
                f"payload key {str(key)[:60]!r} is not a valid object name: '/'-separated segments of "
                f"letters, digits and !_.*'()-, none empty, '.' or '..', {_MAX_OBJECT_NAME} bytes in all"
            )
        return name

    def _name_of(self, uri: str) -> str:
        if not self.contains(uri):
            raise InvalidArgument(f"payload {uri!r:.200} is not an object under {self._location}")
        return uri[len(f"s3://{self._bucket}/") :]


def _valid_name(name: str) -> bool:
    return (
        0 < len(name.encode("utf-8")) <= _MAX_OBJECT_NAME
        and all(_SEGMENT.fullmatch(segment) for segment in name.split("/"))
    )


def _parse(location: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> (bucket, prefix without slashes at the ends)."""
    if not isinstance(location, str) or not location.startswith("s3://"):
        raise InvalidArgument(f"offload location {location!r:.80} is not an s3:// location")
    rest = location[len("s3://") :]
    if "?" in rest or "#" in rest:
        raise InvalidArgument(f"offload location {location!r:.80} takes no query or fragment")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidArgument(
            f"offload location {location!r:.80}: {bucket!r:.70} is not an S3 bucket name "
            "(3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)"
        )
    prefix = prefix.strip("/")
    if prefix and not _valid_name(prefix):
        raise InvalidArgument(
            f"offload location {location!r:.80}: prefix {prefix!r:.70} is not a valid object name prefix "
            "('/'-separated segments of letters, digits and !_.*'()-, none empty, '.' or '..')"
        )
    return bucket, prefix
