"""``gs://bucket/prefix``: payloads as objects of a Google Cloud Storage bucket.

The client (google-cloud-storage) comes from Application Default Credentials, or
from ``STORAGE_EMULATOR_HOST`` (anonymous) for an emulator; it is made on first use
(ADC may ask the metadata server) and shared by every thread (the SDK documents its
client as safe to share). Every call passes a bounded retry (at most about 5 s of
retrying) and timeouts, so a store that is down fails in seconds, not after the
SDK's default two minutes. Downloads are checked against the object's checksum by
the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import ErrorCode, NotFound, Unsupported
from ._object_store import ErrorTable, ObjectStore

__all__ = ["GcsStore"]

# Bucket names without dots are 3-63 characters; with dots up to 222.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_TIMEOUT = (3.0, 60.0)  # seconds to connect, seconds between bytes read

_E = ErrorCode


def _by_cause(exc: BaseException) -> ErrorCode:
    # google.api_core's RetryError: the retry gave up; the last error it saw is its cause.
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        for klass in type(cause).__mro__:
            entry = _table().get(klass)
            if entry is not None and entry is not _by_cause:
                return entry if isinstance(entry, ErrorCode) else entry(cause)
    return _E.UNAVAILABLE  # retries ran out on errors the retry judged transient


def _by_response_status(exc: BaseException) -> ErrorCode:
    # The upload/download layer's InvalidResponse carries the HTTP response, not a typed class.
    status = int(getattr(getattr(exc, "response", None), "status_code", 0) or 0)
    if status == 404:
        return _E.NOT_FOUND
    if status in (401, 403):
        return _E.PERMISSION_DENIED
    if status == 429:
        return _E.RESOURCE_EXHAUSTED
    if status >= 500:
        return _E.UNAVAILABLE
    return _E.INVALID_ARGUMENT if status >= 400 else _E.UNKNOWN


_TABLE: dict[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {}


def _table() -> ErrorTable:
    if not _TABLE:
        import google.api_core.exceptions as gex
        import google.auth.exceptions as aex
        import google.cloud.storage.exceptions as sex  # type: ignore[import-untyped]
        import requests

        _TABLE.update(
            {
                gex.NotFound: _E.NOT_FOUND,
                gex.Forbidden: _E.PERMISSION_DENIED,
                gex.Unauthorized: _E.PERMISSION_DENIED,
                gex.BadRequest: _E.INVALID_ARGUMENT,
                gex.PreconditionFailed: _E.FAILED_PRECONDITION,
                gex.TooManyRequests: _E.RESOURCE_EXHAUSTED,
                gex.RequestRangeNotSatisfiable: _E.INVALID_ARGUMENT,
                gex.ServerError: _E.UNAVAILABLE,
                gex.RetryError: _by_cause,
                # The bytes received do not match the object's checksum: damaged on the way, so
                # reading again may succeed.
                sex.DataCorruption: _E.UNAVAILABLE,
                sex.InvalidResponse: _by_response_status,
                aex.DefaultCredentialsError: _E.PERMISSION_DENIED,
                aex.RefreshError: _E.PERMISSION_DENIED,
                aex.TransportError: _E.UNAVAILABLE,
                requests.exceptions.ConnectTimeout: _E.UNAVAILABLE,
                requests.exceptions.Timeout: _E.DEADLINE_EXCEEDED,
                requests.exceptions.ConnectionError: _E.UNAVAILABLE,
                requests.exceptions.ChunkedEncodingError: _E.UNAVAILABLE,
                ConnectionError: _E.UNAVAILABLE,
            }
        )
    return _TABLE


class GcsStore(ObjectStore):
    scheme: ClassVar[str] = "gs"

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(bucket, prefix)
        self._retry: Any = None

    @classmethod
    def open(cls, location: str) -> GcsStore:
        bucket, prefix = cls._parse(location)
        try:
            import google.cloud.storage  # noqa: F401 - a missing SDK fails here
        except ImportError as error:
            raise Unsupported(
                "the gs:// payload store needs google-cloud-storage: pip install 'cloudqueue[offload-gcs]'"
            ) from error
        return cls(bucket, prefix)

    @classmethod
    def _error_table(cls) -> ErrorTable:
        return _table()

    @classmethod
    def _bucket_problem(cls, bucket: str) -> str | None:
        if _BUCKET.fullmatch(bucket) and ".." not in bucket and ("." in bucket or len(bucket) <= 63):
            return None
        return (
            "a Cloud Storage bucket name (3-63 lowercase letters, digits, _ and -, or up to 222 "
            "with dots; starting and ending with a letter or digit)"
        )

    def _new_client(self) -> Any:
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

        self._retry = DEFAULT_RETRY.with_delay(initial=0.2, maximum=1.0).with_timeout(5.0)
        return storage.Client().bucket(self._bucket_name)

    def _close_client(self, client: Any) -> None:
        client.client.close()

    def _upload(self, client: Any, name: str, data: bytes) -> None:
        # An explicit retry: uploads of one key's same bytes are safe to repeat.
        client.blob(name).upload_from_string(data, retry=self._retry, timeout=_TIMEOUT)

    def _download(self, client: Any, name: str) -> bytes:
        data: bytes = client.blob(name).download_as_bytes(retry=self._retry, timeout=_TIMEOUT)
        return data

    def _remove(self, client: Any, name: str) -> None:
        client.blob(name).delete(retry=self._retry, timeout=_TIMEOUT)

    def _already_gone(self, error: NotFound) -> bool:
        return True  # already gone (or never written): what delete promises either way
