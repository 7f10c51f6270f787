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
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ..errors import ErrorCode, InvalidArgument, NotFound, Unsupported, register_secret
from ._object_store import ErrorTable, ObjectStore

__all__ = ["ACCOUNT_URL_ENV", "CONNECTION_STRING_ENV", "AzureBlobStore"]

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_URL_ENV = "AZURE_STORAGE_ACCOUNT_URL"

# Container names: 3-63 lowercase letters, digits and single hyphens, starting and ending
# with a letter or digit.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
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


def _errors() -> ErrorTable:
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


class AzureBlobStore(ObjectStore):
    scheme: ClassVar[str] = "az"
    object_kind: ClassVar[str] = "blob"
    name_length_in_bytes: ClassVar[bool] = False  # Azure's limit counts characters

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
        super().__init__(container, prefix)
        self._connection_string = connection_string
        self._account_url = account_url

    @classmethod
    def open(cls, location: str) -> AzureBlobStore:
        container, prefix = cls._parse(location, query_hint=f" (put a SAS in {ACCOUNT_URL_ENV})")
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

    @classmethod
    def _error_table(cls) -> ErrorTable:
        return _errors()

    @classmethod
    def _bucket_problem(cls, bucket: str) -> str | None:
        if _CONTAINER.fullmatch(bucket):
            return None
        return (
            "an Azure container name (3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit)"
        )

    def _new_client(self) -> Any:
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
        return service.get_container_client(self._bucket_name)

    def _close_client(self, client: Any) -> None:
        client.close()

    def _upload(self, client: Any, name: str, data: bytes) -> None:
        client.upload_blob(name, data, overwrite=True, max_concurrency=_CONCURRENCY)

    def _download(self, client: Any, name: str) -> bytes:
        data: bytes = client.download_blob(name, max_concurrency=_CONCURRENCY).readall()
        return data

    def _remove(self, client: Any, name: str) -> None:
        client.delete_blob(name)

    def _already_gone(self, error: NotFound) -> bool:
        from azure.storage.blob import StorageErrorCode

        # Only the blob may be missing: a missing container is a misconfiguration to report.
        return getattr(error.__cause__, "error_code", None) == StorageErrorCode.BLOB_NOT_FOUND


def _register_sas(query: str) -> None:
    """A SAS token whole, and its signature alone (errors may quote just ``sig=...``)."""
    register_secret(query)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() == "sig":
            register_secret(value)
