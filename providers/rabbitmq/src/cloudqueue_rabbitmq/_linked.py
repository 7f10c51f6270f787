"""What the producer and the consumer drivers share: their link to the broker, shown to
users through ``as_()`` and to telemetry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._link import Link
from ._loop import LoopThread
from ._names import Names

__all__ = ["Linked"]


class Linked:
    """Mixed into a driver that keeps ``_loop``, ``_names`` and ``_link``."""

    _loop: LoopThread
    _names: Names
    _link: Link

    def native_objects(self) -> Iterable[object]:
        # The driver's aio-pika channel (opened now if it is not), then its connection. They
        # belong to the provider's loop thread: use them there (``loop.call_soon_threadsafe``).
        try:
            channel = self._link.current() or self._loop.run(self._link.channel())
        except Exception:  # nothing to offer while the broker cannot be reached
            return ()
        return (channel, *self._link.connections())

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        broker = self._names.broker
        return {"messaging.system": "rabbitmq", "server.address": broker.host,
                "server.port": broker.port}
