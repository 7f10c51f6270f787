"""The payload store interface and how a location finds its store.

A :class:`PayloadStore` holds the bodies of messages too large for their
destination (the claim-check pattern). Stores are found by the scheme of their
location (``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix``,
``file:///abs/dir``) among the classes returned by the
``cloudqueue_payload_stores`` hook (see :mod:`cloudqueue.hookspecs`); the
built-in stores register through that same hook (:mod:`cloudqueue.offload._builtin`).
"""

from __future__ import annotations

import abc
import threading
from typing import ClassVar

from ..errors import InvalidArgument, NotFound

__all__ = ["PayloadStore", "open_store", "store_classes"]


class PayloadStore(abc.ABC):
    """Where offloaded payloads live.

    Implementations are thread-safe and blocking (the asyncio API calls them in
    worker threads). They raise cloudqueue's typed errors, translated from their
    SDK's typed exceptions (:func:`cloudqueue.errors.translate`): ``NotFound`` for a
    missing object, ``Unavailable`` (retryable) when the service cannot be reached
    or throttles, ``PermissionDenied``, ``InvalidArgument`` for a bad location.
    Secrets they read (keys, connection strings, SAS tokens) are registered with
    :func:`cloudqueue.errors.register_secret` before any request.
    """

    scheme: ClassVar[str]
    """The location scheme this store answers, e.g. ``"s3"``."""

    @classmethod
    @abc.abstractmethod
    def open(cls, location: str) -> PayloadStore:
        """A store for ``location`` (``"<scheme>://..."``); InvalidArgument when malformed.

        Opening must not need the network: clients are created here and connect lazily.
        """

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """The normalized location, e.g. ``"s3://bucket/prefix"`` (no trailing slash)."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``<location>/<key>``; return the object's URI."""

    @abc.abstractmethod
    def get(self, uri: str) -> bytes:
        """The object at ``uri``: NotFound when missing, Unavailable when the store is down."""

    @abc.abstractmethod
    def delete(self, uri: str) -> None:
        """Delete the object at ``uri``; an object already gone is not an error."""

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` lies inside this store's location.

        Consumers fetch only such URIs: a message must not make a consumer read
        arbitrary buckets or files with its credentials. The default is a prefix
        test on path segments; stores whose names can alias (file paths with
        ``..``, symlinks) override it.
        """
        base = self.location.rstrip("/")
        return uri.startswith(base + "/") and len(uri) > len(base) + 1

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release the store's client (called when its producer or consumer closes)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


_lock = threading.Lock()
_classes: dict[str, type[PayloadStore]] | None = None
_built_for: frozenset[object] = frozenset()


def store_classes() -> dict[str, type[PayloadStore]]:
    """Every registered payload store class by scheme (rebuilt when plugins change)."""
    global _classes, _built_for
    from .._registry import plugin_manager  # the registry imports hookspecs; keep this lazy

    manager = plugin_manager()
    registered = frozenset(manager.get_plugins())
    with _lock:
        if _classes is not None and registered == _built_for:
            return _classes
    found: dict[str, type[PayloadStore]] = {}
    for contributed in manager.hook.cloudqueue_payload_stores():
        for cls in contributed:
            other = found.get(cls.scheme)
            if other is not None and other is not cls:
                raise InvalidArgument(
                    f"two plugins claim the payload store scheme {cls.scheme!r}: "
                    f"{other.__module__}.{other.__qualname__} and "
                    f"{cls.__module__}.{cls.__qualname__}"
                )
            found[cls.scheme] = cls
    with _lock:
        _classes, _built_for = found, registered
    return found


def open_store(location: str) -> PayloadStore:
    """The store for ``location``, chosen by its scheme.

    InvalidArgument for a location without a scheme, NotFound for a scheme no
    installed store answers (naming the ones that are).
    """
    if not isinstance(location, str) or "://" not in location:
        raise InvalidArgument(
            f"offload location {location!r} has no scheme; expected s3://bucket/prefix, "
            "gs://bucket/prefix, az://container/prefix or file:///absolute/directory"
        )
    scheme = location.split("://", 1)[0].lower()
    classes = store_classes()
    cls = classes.get(scheme)
    if cls is None:
        known = ", ".join(f"{name}://" for name in sorted(classes)) or "none"
        raise NotFound(f"no payload store for scheme {scheme}:// (installed: {known})")
    return cls.open(location)
