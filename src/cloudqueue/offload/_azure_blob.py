"""``az://container/prefix``: payloads as blobs of an Azure Storage container.

The account comes from the environment, read when the store is opened:
``AZURE_STORAGE_CONNECTION_STRING`` (its key or SAS is registered as a secret at once),
else ``AZURE_STORAGE_ACCOUNT_URL`` with ``DefaultAzureCredential`` (azure-identity), or
a SAS in that URL's query (registered too). The client (azure-storage-blob) is made on
first use and shared by every thread. The SDK's default retry waits 15 s and more
between attempts; here retries are linear, about 1 s apart, 2 of them, with a 3 s
timeout to connect, so a store that is down fails in seconds.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ..errors import ErrorCode, InvalidArgument, NotFound, Unsupported, register_secret, translate
from ._store import PayloadStore

__all__ = ["ACCOUNT_URL_ENV", "CONNECTION_STRING_ENV", "AzureBlobStore"]

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_URL_ENV = "AZURE_STORAGE_ACCOUNT_URL"

# Container names: 3-63 lowercase letters, digits and single hyphens, starting and ending
# with a letter or digit.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# One segment of a blob name: no empty, "." or ".." segments, which the service would
# normalize into another blob's name.
_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9!_.*'()-]+")
_MAX_BLOB_NAME = 1024  # characters, Azure's limit
_CONCURRENCY = 4  # parallel block transfers for one large blob

_E = ErrorCode


def _by_status(exc: BaseException) -> ErrorCode:
    status = getattr(exc, "status_code", None) or 0
    if status in (401, 403):
        return _E.PERMISSION_DENIED
    if status == 404:
        return _E.NOT_FOUND
    if status == 409:
        return _E.FAILED_PRECONDITION
    if status in (400, 413, 414):
        return _E.INVALID_ARGUMENT
    if status == 429:
        return _E.RESOURCE_EXHAUSTED
    if status >= 500:
        return _E.UNAVAILABLE
    return _E.UNKNOWN


def _errors() -> Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]]:
    from azure.core import exceptions as core

    return {
        core.ResourceNotFoundError: _E.NOT_FOUND,
        core.ClientAuthenticationError: _E.PERMISSION_DENIED,  # azure-identity's errors derive from it
        core.ResourceExistsError: _E.ALREADY_EXISTS,
        core.ServiceRequestTimeoutError: _E.UNAVAILABLE,
        core.ServiceResponseTimeoutError: _E.DEADLINE_EXCEEDED,
        core.ServiceRequestError: _E.UNAVAILABLE,
        core.ServiceResponseError: _E.UNAVAILABLE,
        core.IncompleteReadError: _E.UNAVAILABLE,
        core.HttpResponseError: _by_status,
        ConnectionError: _E.UNAVAILABLE,
        ValueError: _E.INVALID_ARGUMENT,  # a malformed connection string or account URL
    }


class AzureBlobStore(PayloadStore):
    scheme: ClassVar[str] = "az"

    def __init__(
        self, container: str, prefix: str, *, connection_string: str | None, account_url: str | None
    ) -> None:
        if connection_string is None and account_url is None:
            raise InvalidArgument(
                f"the az:// payload store needs {CONNECTION_STRING_ENV}, or {ACCOUNT_URL_ENV} "
                "(https://ACCOUNT.blob.core.windows.net) with credentials DefaultAzureCredential finds"
            )
        # Registered before any request, so nothing the SDK logs or raises can show them.
        if connection_string is not None:
            register_secret(connection_string)
        if account_url is not None and urlsplit(account_url).query:
            _register_sas(urlsplit(account_url).query)
        self._container_name = container
        self._prefix = prefix
        self._location = f"az://{container}/{prefix}" if prefix else f"az://{container}"
        self._connection_string = connection_string
        self._account_url = account_url
        self._lock = threading.Lock()
        self._container: Any = None
        self._table = _errors()

    @classmethod
    def open(cls, location: str) -> AzureBlobStore:
        container, prefix = _parse(location)
        try:
            import azure.storage.blob  # here, so that a missing SDK fails at open
        except ImportError as error:
            raise Unsupported(
                "the az:// payload store needs azure-storage-blob: pip install 'cloudqueue[offload-azure]'"
            ) from error
        connection_string = os.environ.get(CONNECTION_STRING_ENV) or None
        account_url = None if connection_string else (os.environ.get(ACCOUNT_URL_ENV) or None)
        if account_url is not None and not urlsplit(account_url).query:
            try:
                import azure.identity  # noqa: F401 - DefaultAzureCredential signs in without a SAS
            except ImportError as error:
                raise Unsupported(
                    f"the az:// payload store with {ACCOUNT_URL_ENV} signs in with azure-identity: "
                    "pip install 'cloudqueue[offload-azure]'"
                ) from error
        return cls(container, prefix, connection_string=connection_string, account_url=account_url)

    @property
    def location(self) -> str:
        return self._location

    def put(self, key: str, data: bytes) -> str:
        name = self._blob_name(key)
        uri = f"az://{self._container_name}/{name}"
        with translate(self._table, f"writing payload {uri}"):
            self._client().upload_blob(name, data, overwrite=True, max_concurrency=_CONCURRENCY)
        return uri

    def get(self, uri: str) -> bytes:
        name = self._name_of(uri)
        with translate(self._table, f"reading payload {uri}"):
            data: bytes = self._client().download_blob(name, max_concurrency=_CONCURRENCY).readall()
            return data

    def delete(self, uri: str) -> None:
        from azure.storage.blob import StorageErrorCode

        name = self._name_of(uri)
        try:
            with translate(self._table, f"deleting payload {uri}"):
                self._client().delete_blob(name)
        except NotFound as error:
            # Only the blob may be missing: a missing container is a misconfiguration to report.
            native = error.__cause__
            if getattr(native, "error_code", None) != StorageErrorCode.BLOB_NOT_FOUND:
                raise

    def contains(self, uri: str) -> bool:
        return super().contains(uri) and _valid_name(uri[len(f"az://{self._container_name}/") :])

    def close(self) -> None:
        with self._lock:
            container, self._container = self._container, None
        if container is not None:
            container.close()

    def _client(self) -> Any:
        with self._lock:
            if self._container is None:
                self._container = self._new_container_client()
            return self._container

    def _new_container_client(self) -> Any:
        from azure.storage.blob import BlobServiceClient, LinearRetry

        options: dict[str, Any] = {
            "retry_policy": LinearRetry(backoff=1, retry_total=2, random_jitter_range=1),
            "connection_timeout": 3,
            "read_timeout": 60,
        }
        if self._connection_string is not None:
            service = BlobServiceClient.from_connection_string(self._connection_string, **options)
        else:
            assert self._account_url is not None
            credential: Any = None
            if not urlsplit(self._account_url).query:  # a SAS in the URL is the credential
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            service = BlobServiceClient(self._account_url, credential=credential, **options)
        return service.get_container_client(self._container_name)

    def _blob_name(self, key: str) -> str:
        name = f"{self._prefix}/{key}" if self._prefix else key
        if not isinstance(key, str) or not _valid_name(key) or not _valid_name(name):
            raise InvalidArgument(
                f"payload key {str(key)[:60]!r} is not a valid blob name: '/'-separated segments of "
                f"letters, digits and !_.*'()-, none empty, '.' or '..', {_MAX_BLOB_NAME} characters in all"
            )
        return name

    def _name_of(self, uri: str) -> str:
        if not self.contains(uri):
            raise InvalidArgument(f"payload {uri!r:.200} is not a blob under {self._location}")
        return uri[len(f"az://{self._container_name}/") :]


def _register_sas(query: str) -> None:
    """A SAS token whole, and its signature alone (errors may quote just ``sig=...``)."""
    register_secret(query)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() == "sig":
            register_secret(value)


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= _MAX_BLOB_NAME and all(_SEGMENT.fullmatch(part) for part in name.split("/"))


def _parse(location: str) -> tuple[str, str]:
    """``az://container[/prefix]`` -> (container, prefix without slashes at the ends)."""
    if not isinstance(location, str) or not location.startswith("az://"):
        raise InvalidArgument(f"offload location {location!r:.80} is not an az:// location")
    rest = location[len("az://") :]
    if "?" in rest or "#" in rest:
        raise InvalidArgument(
            f"offload location {location!r:.80} takes no query or fragment (put a SAS in {ACCOUNT_URL_ENV})"
        )
    container, _, prefix = rest.partition("/")
    if not _CONTAINER.fullmatch(container):
        raise InvalidArgument(
            f"offload location {location!r:.80}: {container!r:.70} is not an Azure container name "
            "(3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit)"
        )
    prefix = prefix.strip("/")
    if prefix and not _valid_name(prefix):
        raise InvalidArgument(
            f"offload location {location!r:.80}: prefix {prefix!r:.70} is not a valid blob name prefix "
            "('/'-separated segments of letters, digits and !_.*'()-, none empty, '.' or '..')"
        )
    return container, prefix
