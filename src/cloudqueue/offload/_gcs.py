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
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..errors import ErrorCode, InvalidArgument, NotFound, Unsupported, translate
from ._store import PayloadStore

__all__ = ["GcsStore"]

# Bucket names without dots are 3-63 characters; with dots up to 222.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
# One segment of an object name: no empty, "." or ".." segments (GCS forbids "." and ".."
# as whole names, and empty segments would make two URIs name one object only by accident).
_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9!_.*'()-]+")
_MAX_OBJECT_NAME = 1024  # bytes, GCS's limit on an object name
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


def _table() -> Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]]:
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


class GcsStore(PayloadStore):
    scheme: ClassVar[str] = "gs"

    def __init__(self, bucket: str, prefix: str) -> None:
        self._bucket_name = bucket
        self._prefix = prefix
        self._location = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
        self._lock = threading.Lock()
        self._bucket: Any = None
        self._retry: Any = None

    @classmethod
    def open(cls, location: str) -> GcsStore:
        bucket, prefix = _parse(location)
        try:
            import google.cloud.storage  # noqa: F401 - a missing SDK fails here
        except ImportError as error:
            raise Unsupported(
                "the gs:// payload store needs google-cloud-storage: pip install 'cloudqueue[offload-gcs]'"
            ) from error
        return cls(bucket, prefix)

    @property
    def location(self) -> str:
        return self._location

    def put(self, key: str, data: bytes) -> str:
        name = self._object_name(key)
        uri = f"gs://{self._bucket_name}/{name}"
        with translate(_table(), f"writing payload {uri}"):
            bucket = self._handle()
            # An explicit retry: uploads of one key's same bytes are safe to repeat.
            bucket.blob(name).upload_from_string(data, retry=self._retry, timeout=_TIMEOUT)
        return uri

    def get(self, uri: str) -> bytes:
        name = self._name_of(uri)
        with translate(_table(), f"reading payload {uri}"):
            bucket = self._handle()
            data: bytes = bucket.blob(name).download_as_bytes(retry=self._retry, timeout=_TIMEOUT)
            return data

    def delete(self, uri: str) -> None:
        name = self._name_of(uri)
        try:
            with translate(_table(), f"deleting payload {uri}"):
                bucket = self._handle()
                bucket.blob(name).delete(retry=self._retry, timeout=_TIMEOUT)
        except NotFound:
            pass  # already gone (or never written): what delete promises either way

    def contains(self, uri: str) -> bool:
        return super().contains(uri) and _valid_name(uri[len(f"gs://{self._bucket_name}/") :])

    def close(self) -> None:
        with self._lock:
            bucket, self._bucket = self._bucket, None
        if bucket is not None:
            bucket.client.close()

    def _handle(self) -> Any:
        with self._lock:
            if self._bucket is None:
                from google.cloud import storage
                from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

                self._retry = DEFAULT_RETRY.with_delay(initial=0.2, maximum=1.0).with_timeout(5.0)
                self._bucket = storage.Client().bucket(self._bucket_name)
            return self._bucket

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
        return uri[len(f"gs://{self._bucket_name}/") :]


def _valid_name(name: str) -> bool:
    return (
        0 < len(name.encode("utf-8")) <= _MAX_OBJECT_NAME
        and all(_SEGMENT.fullmatch(segment) for segment in name.split("/"))
    )


def _parse(location: str) -> tuple[str, str]:
    """``gs://bucket[/prefix]`` -> (bucket, prefix without slashes at the ends)."""
    if not isinstance(location, str) or not location.startswith("gs://"):
        raise InvalidArgument(f"offload location {location!r:.80} is not a gs:// location")
    rest = location[len("gs://") :]
    if "?" in rest or "#" in rest:
        raise InvalidArgument(f"offload location {location!r:.80} takes no query or fragment")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or ("." not in bucket and len(bucket) > 63):
        raise InvalidArgument(
            f"offload location {location!r:.80}: {bucket!r:.70} is not a Cloud Storage bucket name "
            "(3-63 lowercase letters, digits, _ and -, or up to 222 with dots; starting and ending "
            "with a letter or digit)"
        )
    prefix = prefix.strip("/")
    if prefix and not _valid_name(prefix):
        raise InvalidArgument(
            f"offload location {location!r:.80}: prefix {prefix!r:.70} is not a valid object name prefix "
            "('/'-separated segments of letters, digits and !_.*'()-, none empty, '.' or '..')"
        )
    return bucket, prefix
