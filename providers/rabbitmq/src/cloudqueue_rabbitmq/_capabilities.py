"""What RabbitMQ destinations support, as data checked by the portable layer.

Sizes: RabbitMQ accepts bodies up to ``max_message_size`` (128 MiB by default), but a quorum
queue keeps every message in memory until it is written out and replicated; cloudqueue caps
bodies at 16 MiB. Headers travel in one content-header frame, which must fit the negotiated
``frame_max`` (128 KiB by default): 64 attributes of at most 255-byte names and 1 KiB values
always fit.

Leases: RabbitMQ has none. A delivery stays with its channel until it is settled or the
channel closes, or the broker's ``consumer_timeout`` (30 min by default) closes the channel.
The driver gives a delivery back (``basic.nack`` with requeue, which counts a delivery) when
its lease ends, so an abandoned message comes back as on the clouds; ``extend`` moves that
deadline, never past ``consumer_timeout``.

Unsupported, with the reason: ordering per key (a quorum queue is FIFO, but competing
consumers with prefetch receive a key's later messages while an earlier one is still held or
being nacked, and a single active consumer would serialise the whole queue, not one key);
deduplication (the Debian broker ships no
deduplication plugin).

Delays (delayed send and ``nack(delay=...)``): wait queues, rounded up to a power of two
seconds, up to :data:`._delay.MAX_DELAY` (see :mod:`._delay`).
"""

from __future__ import annotations

from cloudqueue.driver import Capabilities, Limits
from cloudqueue.wire import RESERVED_PREFIX

from ._delay import MAX_DELAY
from ._names import MAX_LEASE
from ._wire import BROKER_HEADER_PREFIX

__all__ = ["CAPABILITIES", "LIMITS"]

LIMITS = Limits(
    max_message_bytes=16 * 1024 * 1024,
    # A batch's publishes are pipelined and their confirms awaited together.
    max_send_batch=100,
    max_send_batch_bytes=16 * 1024 * 1024,
    max_receive_batch=100,
    max_settle_batch=100,
    max_attributes=64,
    max_attribute_name_bytes=255,
    max_attribute_value_bytes=1024,
    reserved_attribute_prefixes=(BROKER_HEADER_PREFIX, RESERVED_PREFIX),
    max_delay=MAX_DELAY,
    max_nack_delay=MAX_DELAY,
    max_lease=MAX_LEASE,
    max_lease_total=MAX_LEASE,
    max_receive_wait=20.0,
)

CAPABILITIES = Capabilities(
    limits=LIMITS,
    ordering=False,
    deduplication=False,
    delayed_delivery=True,
    dead_letter=True,
    delivery_attempt=True,
    nack_delay=True,
    lease_extension=True,
    fan_out=True,
    implicit_create=False,
    durable=True,
)
