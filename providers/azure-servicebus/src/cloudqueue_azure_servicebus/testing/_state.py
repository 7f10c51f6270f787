"""Broker state shared by the AMQP and HTTP front ends, confined to the loop thread."""

from __future__ import annotations

import threading

from ._management import ManagementNode
from ._namespace import Namespace
from ._timers import Timers


class BrokerState:
    def __init__(self) -> None:
        # Held by the loop while it handles I/O and timers, and by public methods that
        # touch entities from other threads (e.g. ``broker.create_queue`` in a test).
        self.lock = threading.RLock()
        self.timers = Timers()
        self.namespace = Namespace(self.timers)
        self.management = ManagementNode(self.namespace)
