"""Large payloads by claim check: bodies over a threshold go to a payload store.

See docs/large-messages.md.
"""

from ._store import PayloadStore, open_store, store_classes

__all__ = ["PayloadStore", "open_store", "store_classes"]
