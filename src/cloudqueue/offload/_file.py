"""``file:///absolute/dir``: payloads as files of one local (or mounted) directory.

Meant for tests, single hosts and shared mounts. Writes are atomic (a temporary
file in the same directory, then a rename), so a reader never sees half a payload.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit

from ..errors import ErrorCode, InvalidArgument, NotFound, translate
from ._store import PayloadStore

__all__ = ["FileStore"]

#: Keys are single file names: no separators, no leading dot (temporary files start with one).
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def _os_error_code(error: BaseException) -> ErrorCode:
    # A full disk or a dropped mount may clear up: retryable. Anything else is a fault
    # of the location itself.
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EIO, errno.ESTALE):
        return ErrorCode.UNAVAILABLE
    return ErrorCode.FAILED_PRECONDITION


_ERRORS: dict[type[BaseException], ErrorCode | Callable[[BaseException], ErrorCode]] = {
    FileNotFoundError: ErrorCode.NOT_FOUND,
    PermissionError: ErrorCode.PERMISSION_DENIED,
    OSError: _os_error_code,
}


class FileStore(PayloadStore):
    scheme: ClassVar[str] = "file"

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._location = "file://" + quote(directory)

    @classmethod
    def open(cls, location: str) -> FileStore:
        return cls(directory_of(location))

    @property
    def location(self) -> str:
        return self._location

    @property
    def directory(self) -> str:
        return self._directory

    def put(self, key: str, data: bytes) -> str:
        if not _KEY.fullmatch(key):
            raise InvalidArgument(
                f"payload key {key[:60]!r} is not a plain file name (letters, digits, . _ -; "
                "at most 200 characters, not starting with a dot)"
            )
        with translate(_ERRORS, f"writing payload {key} under {self._location}"):
            os.makedirs(self._directory, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=self._directory)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.replace(temporary, os.path.join(self._directory, key))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise
        return f"{self._location}/{key}"

    def get(self, uri: str) -> bytes:
        path = self._path_of(uri)
        try:
            with translate(_ERRORS, f"reading payload {uri}"), open(path, "rb") as file:
                return file.read()
        except NotFound:
            raise NotFound(f"payload {uri} does not exist") from None

    def delete(self, uri: str) -> None:
        path = self._path_of(uri)
        with translate(_ERRORS, f"deleting payload {uri}"), contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def contains(self, uri: str) -> bool:
        try:
            path = _path_of_uri(uri)
        except InvalidArgument:
            return False
        # Compare real paths: "..", doubled slashes and symlinks cannot lead outside.
        parent = os.path.realpath(self._directory)
        return os.path.dirname(os.path.realpath(path)) == parent and os.path.basename(
            path
        ) == os.path.basename(os.path.realpath(path))

    def _path_of(self, uri: str) -> str:
        if not self.contains(uri):
            raise InvalidArgument(f"payload {uri!r} is not a file directly under {self._location}")
        return _path_of_uri(uri)


def _path_of_uri(uri: str) -> str:
    if not isinstance(uri, str) or not uri.startswith("file://"):
        raise InvalidArgument(f"{uri!r:.80} is not a file:// URI")
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidArgument(f"{uri!r:.80} is not a local file:// URI")
    return unquote(parts.path)


def directory_of(location: str) -> str:
    """The absolute directory of a ``file:///abs/dir`` location, normalized."""
    if not isinstance(location, str) or not location.startswith("file://"):
        raise InvalidArgument(f"offload location {location!r:.80} is not a file:// location")
    parts = urlsplit(location)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/"):
        raise InvalidArgument(
            f"offload location {location!r:.80} must name an absolute directory: "
            "file:///absolute/path (three slashes)"
        )
    if parts.query or parts.fragment:
        raise InvalidArgument(f"offload location {location!r:.80} takes no query or fragment")
    normalized = os.path.normpath(path)
    if normalized == "/":
        raise InvalidArgument("offload location file:/// would write payloads into /")
    return normalized
