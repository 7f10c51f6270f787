"""The demo: an order-processing pipeline on any cloudqueue backend.

An order producer emits ``order.placed`` events onto one queue. Handlers are
triggered by event type and emit the next event::

    order.placed --reserve-stock--> stock.reserved --charge-payment--> payment.captured
                 --ship--> order.shipped

Some calls to the (simulated) warehouse, payment gateway and carrier fail
transiently: the handler nacks with an exponential ``nack(delay=...)`` backoff
and the message comes back with a higher ``delivery_attempt``. A few orders are
poison (a corrupt body, an unknown currency, an address without a postcode):
they fail on every attempt until the queue moves them to its dead-letter queue
after ``dead_letter_after`` deliveries, where the demo reads them back from
:func:`cloudqueue.dead_letter_url`. Which calls fail is decided by ``seed``.

Only the public API is used: ``declare``, ``purge``, ``dead_letter_url``,
``open_producer`` and ``open_consumer``.
"""

from ._pipeline import DEAD_LETTER_AFTER, DEMO_QUEUE, run_demo
from ._report import Report, StageCounts
from ._shop import STAGES

__all__ = ["DEAD_LETTER_AFTER", "DEMO_QUEUE", "STAGES", "Report", "StageCounts", "run_demo"]
