"""What the cloud object stores (``s3://``, ``gs://``, ``az://``) share.

Each holds one bucket (Azure: container) and a prefix, names objects ``<prefix>/<key>``
with the same safe spelling, makes its SDK client on first use under a lock (making it
may resolve credentials over the network, which opening must not do) and shares it
between threads. A subclass supplies only what its SDK does: the client, the three
calls, the error table, and the rules for its bucket names.
"""

from __future__ import annotations

import abc
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..errors import ErrorCode, InvalidArgument, NotFound, translate
from ._store import PayloadStore

__all__ = ["ErrorTable", "ObjectStore"]

ErrorTable = Mapping[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]]

# One segment of an object name: no empty, "." or ".." segments, which a path-style URL
# (LocalStack, proxies) or the service could normalize into another object's name, and
# which would let two URIs name one object.
_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9!_.*'()-]+")
_NAME_RULE = "'/'-separated segments of letters, digits and !_.*'()-, none empty, '.' or '..'"


class ObjectStore(PayloadStore):
    """Base of the stores whose location is ``<scheme>://<bucket>[/<prefix>]``."""

    #: What the service calls one stored payload, for error messages.
    object_kind: ClassVar[str] = "object"
    #: The service's limit on a name, and whether it counts UTF-8 bytes (else characters).
    max_name_length: ClassVar[int] = 1024
    name_length_in_bytes: ClassVar[bool] = True

    def __init__(self, bucket: str, prefix: str) -> None:
        self._bucket_name = bucket
        self._prefix = prefix
        self._root = f"{self.scheme}://{bucket}/"
        self._location = self._root + prefix if prefix else self._root[:-1]
        self._lock = threading.Lock()
        self._client_handle: Any = None
        self._table = self._error_table()

    # -- what each SDK supplies -------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def _error_table(cls) -> ErrorTable:
        """The SDK's typed errors -> codes (imports the SDK: called once the store is opened)."""

    @classmethod
    @abc.abstractmethod
    def _bucket_problem(cls, bucket: str) -> str | None:
        """Why ``bucket`` is not a valid name for this service (None when it is)."""

    @abc.abstractmethod
    def _new_client(self) -> Any:
        """The SDK's client for this bucket, made on first use."""

    @abc.abstractmethod
    def _close_client(self, client: Any) -> None: ...

    @abc.abstractmethod
    def _upload(self, client: Any, name: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def _download(self, client: Any, name: str) -> bytes: ...

    @abc.abstractmethod
    def _remove(self, client: Any, name: str) -> None: ...

    def _already_gone(self, error: NotFound) -> bool:
        """Whether a NotFound from deleting means only that the object is missing (fine)."""
        return False

    # -- the PayloadStore interface -----------------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    def put(self, key: str, data: bytes) -> str:
        name = self._object_name(key)
        uri = self._root + name
        with translate(self._table, f"writing payload {uri}"):
            self._upload(self._client(), name, data)
        return uri

    def get(self, uri: str) -> bytes:
        name = self._name_of(uri)
        with translate(self._table, f"reading payload {uri}"):
            return self._download(self._client(), name)

    def delete(self, uri: str) -> None:
        name = self._name_of(uri)
        try:
            with translate(self._table, f"deleting payload {uri}"):
                self._remove(self._client(), name)
        except NotFound as error:
            if not self._already_gone(error):
                raise

    def contains(self, uri: str) -> bool:
        return super().contains(uri) and self._valid_name(uri[len(self._root) :])

    def close(self) -> None:
        with self._lock:
            client, self._client_handle = self._client_handle, None
        if client is not None:
            self._close_client(client)

    # -- shared plumbing ----------------------------------------------------------------------

    def _client(self) -> Any:
        with self._lock:
            if self._client_handle is None:
                self._client_handle = self._new_client()
            return self._client_handle

    def _object_name(self, key: str) -> str:
        name = f"{self._prefix}/{key}" if self._prefix else key
        if not isinstance(key, str) or not self._valid_name(key) or not self._valid_name(name):
            unit = "bytes" if self.name_length_in_bytes else "characters"
            raise InvalidArgument(
                f"payload key {str(key)[:60]!r} is not a valid {self.object_kind} name: "
                f"{_NAME_RULE}, {self.max_name_length} {unit} in all"
            )
        return name

    def _name_of(self, uri: str) -> str:
        if not self.contains(uri):
            raise InvalidArgument(
                f"payload {uri!r:.200} is not {_article(self.object_kind)} under {self._location}"
            )
        return uri[len(self._root) :]

    @classmethod
    def _valid_name(cls, name: str) -> bool:
        length = len(name.encode("utf-8")) if cls.name_length_in_bytes else len(name)
        return 0 < length <= cls.max_name_length and all(
            _SEGMENT.fullmatch(segment) for segment in name.split("/")
        )

    @classmethod
    def _parse(cls, location: str, *, query_hint: str = "") -> tuple[str, str]:
        """``<scheme>://bucket[/prefix]`` -> (bucket, prefix without slashes at the ends)."""
        scheme = f"{cls.scheme}://"
        if not isinstance(location, str) or not location.startswith(scheme):
            raise InvalidArgument(f"offload location {location!r:.80} is not {_article(scheme)} location")
        rest = location[len(scheme) :]
        if "?" in rest or "#" in rest:
            raise InvalidArgument(f"offload location {location!r:.80} takes no query or fragment{query_hint}")
        bucket, _, prefix = rest.partition("/")
        problem = cls._bucket_problem(bucket)
        if problem is not None:
            raise InvalidArgument(f"offload location {location!r:.80}: {bucket!r:.70} is not {problem}")
        prefix = prefix.strip("/")
        if prefix and not cls._valid_name(prefix):
            raise InvalidArgument(
                f"offload location {location!r:.80}: prefix {prefix!r:.70} is not a valid "
                f"{cls.object_kind} name prefix ({_NAME_RULE})"
            )
        return bucket, prefix


def _article(word: str) -> str:
    # Read as spoken: "an s3://", "a gs://", "an object", "a blob".
    return f"an {word}" if word[:1] in "aefhilmnorsx" else f"a {word}"
