"""One thread at a time processes a receiver's incoming AMQP frames.

Why: azure-servicebus 7.15 (``_pyamqp``) runs a keep-alive thread beside every receiver
opened with ``prefetch_count=0`` (which the driver uses so that nothing is held locked
between calls); the SDK forces its interval to 5 s and offers no way to turn it off or to
synchronise with it. That thread calls ``Connection.listen()`` while the receiving thread
does too. Both read whole frames under the transport's ``socket_lock`` but process them
outside it, and ``ReceiverLink._incoming_transfer`` keeps the frame it is working on in one
shared attribute (``_first_frame``): when the two threads process transfers at once, a
message is built with another transfer's delivery-id and lock token. Completing it then
settles a different message (one that may never have been handed out), and its own lock
only runs out. The keep-alive itself is needed: it releases messages that arrive between
receive calls, so they do not sit locked in the socket.

So the driver puts one lock around the connection's ``listen``; reentrant, so that a
callback run while a frame is processed may itself wait for a reply through ``listen``.
Every frame-processing path of the SDK goes through ``Connection.listen``: the receive
loop, the keep-alive, settlement and ``$management`` waits. The keep-alive holds the lock
for one read (it returns at the first read timeout), every 5 seconds.

This reaches into two private attributes of the SDK (``ServiceBusReceiver._handler``,
``AMQPClient._connection``); when they are not there (another SDK version, or the uamqp
transport) nothing is changed. tests/test_servicebus_frames.py checks that the SDK still
has them. The SDK may open a new handler (and connection) by itself after an error, so
the driver applies this before each use of its receiver; the keep-alive's first read comes
5 s after it starts, long after the first use.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["serialise_frame_processing"]

_MARK = "_cloudqueue_serialised"


def serialise_frame_processing(receiver: Any) -> bool:
    """Wrap ``receiver``'s connection's ``listen`` in a lock, once per connection.

    True when the connection's frames are (now) processed one thread at a time."""
    connection = getattr(getattr(receiver, "_handler", None), "_connection", None)
    listen = getattr(connection, "listen", None)
    if connection is None or listen is None:
        return False
    if getattr(listen, _MARK, False):
        return True
    lock = threading.RLock()

    def serialised_listen(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return listen(*args, **kwargs)

    setattr(serialised_listen, _MARK, True)
    connection.listen = serialised_listen
    return True
