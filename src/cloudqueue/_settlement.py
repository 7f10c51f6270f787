"""How a received message is settled: the typed seam between received messages,
the consumer engine and the worker runtime."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .driver import Delivery

__all__ = ["Settlement", "Settler"]


class Settlement(enum.StrEnum):
    """What was done with a received message. A ``str`` enum, so that middleware
    comparing with ``"ack"`` keeps working."""

    #: Done: never delivered again.
    ACK = "ack"
    #: Give it back, to be delivered again (after a delay, if one was given).
    NACK = "nack"
    #: Keep the lease for longer; does not end the delivery.
    EXTEND = "extend"
    #: Move it to the dead-letter destination.
    DEAD_LETTER = "dead_letter"


class Settler(Protocol):
    """Carries out the settlements of received messages: a consumer, or a runtime
    standing in for one (the worker, the serverless adapters).

    ``argument`` is the delay in seconds for ``NACK``, the seconds for ``EXTEND``,
    the reason for ``DEAD_LETTER`` and None for ``ACK``. Raises a
    :class:`~cloudqueue.QueueError` when the settlement is refused.
    """

    def settle(self, delivery: Delivery, kind: Settlement, argument: float | str | None) -> None: ...
