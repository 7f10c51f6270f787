"""Broker state shared by the AMQP and HTTP front ends, confined to the loop thread."""

from __future__ import annotations

import threading

from ._auth import TokenCheck
from ._management import ManagementNode
from ._namespace import Namespace
from ._timers import Timers


class BrokerState:
    def __init__(
        self, *, idle_time_scale: float = 1.0, sku: str = "Standard", tokens: TokenCheck | None = None
    ) -> None:
        # Held by the loop while it handles I/O and timers, and by public methods that
        # touch entities from other threads (e.g. ``broker.create_queue`` in a test).
        self.lock = threading.RLock()
        self.timers = Timers()
        # idle_time_scale multiplies auto-delete-on-idle windows (tests use e.g. 0.01); sku is what
        # get_namespace_properties reports.
        self.namespace = Namespace(self.timers, idle_time_scale=idle_time_scale, sku=sku)
        self.management = ManagementNode(self.namespace)
        #: Set when the broker checks tokens (``require_valid_tokens``); None accepts any.
        self.tokens = tokens
