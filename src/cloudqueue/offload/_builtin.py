"""The built-in payload stores, registered through the same hook as third-party ones.

The cloud stores' modules import their SDKs only inside their methods, so
listing them here costs no SDK import; a missing SDK is reported (naming the
extra to install) when a store of that scheme is opened.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ..hookspecs import hookimpl
from ._store import PayloadStore

__all__ = ["cloudqueue_payload_stores"]

# module, class name
_BUILTIN_STORES = (
    ("cloudqueue.offload._file", "FileStore"),
    ("cloudqueue.offload._s3", "S3Store"),
    ("cloudqueue.offload._gcs", "GcsStore"),
    ("cloudqueue.offload._azure_blob", "AzureBlobStore"),
)


@hookimpl
def cloudqueue_payload_stores() -> Sequence[type[PayloadStore]]:
    classes: list[type[PayloadStore]] = []
    for module_name, class_name in _BUILTIN_STORES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # the module exists but something it imports is missing
                raise
            continue  # a store still being written (or dropped from a vendored copy)
        classes.append(getattr(module, class_name))
    return classes
