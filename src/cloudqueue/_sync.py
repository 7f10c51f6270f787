"""The blocking Producer and Consumer: the shared engine run in the calling thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from types import TracebackType
from typing import TYPE_CHECKING

from ._engine.effects import SyncRunner
from ._message import Message
from ._options import ConsumerOptions, ProducerOptions
from ._received import ReceivedMessage
from ._settlement import Settlement
from ._shell import ITERATION_WAIT, ConsumerShell, ProducerShell, raise_failures
from .errors import Closed, QueueError

if TYPE_CHECKING:
    from ._url import Url
    from .driver import Delivery, SubscriptionDriver, TopicDriver
    from .offload._consuming import PayloadResolver

__all__ = ["Consumer", "Producer"]

log = logging.getLogger("cloudqueue")


class Producer(ProducerShell):
    """Sends messages to one destination. Thread-safe; concurrent sends share requests."""

    def __init__(self, url: Url, driver: TopicDriver, options: ProducerOptions) -> None:
        super().__init__(url, driver, options)
        self._runner = SyncRunner(driver)

    def send(
        self,
        body: bytes | str | Message | object,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Send one message; return its id once the provider has accepted it.

        ``body`` may be a value (a pydantic model, msgspec Struct, dataclass, dict/list...):
        it is encoded by the producer's ``codec=``, or the codec its type chooses, which
        adds the ``content-type`` attribute (see :mod:`cloudqueue.codecs`)."""
        message = self.message_for(body, attributes, ordering_key, deduplication_id, delay)
        return self.send_batch((message,))[0]

    def send_batch(self, messages: Iterable[Message]) -> list[str]:
        """Send messages, in as few requests as the provider's limits allow.

        Every message is validated before any is sent. Returns the ids in order;
        if some could not be sent, raises :class:`SendBatchError` whose
        ``results`` say which.
        """
        core = self._core
        batch, sizes = core.validate(messages)
        if not sizes:
            return []
        return raise_failures(self._runner.run(core.send(batch, sizes)))

    def close(self) -> None:
        """Wait for sends under way, then release the driver. Idempotent."""
        if self._runner.run(self._core.drain()):
            self._driver.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Consumer(ConsumerShell):
    """Receives from one queue or subscription. Thread-safe.

    Prefetches adaptively (never more than ``max_in_flight`` unsettled),
    sends settlements in the background, extends leases of held messages.
    """

    def __init__(
        self,
        url: Url,
        driver: SubscriptionDriver,
        options: ConsumerOptions,
        resolver: PayloadResolver | None = None,
    ) -> None:
        super().__init__(url, driver, options, resolver)
        self._runner = SyncRunner(driver)
        self._lock = self._runner.lock  # taken once per settlement: one lookup less
        self._worker = threading.Thread(
            target=self._maintain, name=f"cloudqueue consumer {url}", daemon=True
        )
        self._core.worker_running = True  # so close() waits even if the thread is slow to start
        self._worker.start()

    def _maintain(self) -> None:
        try:
            self._runner.run(self._core.maintain())
        except BaseException:
            log.exception("cloudqueue consumer worker for %s stopped", self.url)
            raise

    def receive(self, max_messages: int = 10, wait: float = 5.0) -> list[ReceivedMessage]:
        """Up to ``max_messages`` messages; waits up to ``wait`` seconds for the
        first, and returns an empty list if none came."""
        deliveries = self.receive_deliveries(max_messages, wait)
        if len(deliveries) == 1:  # one at a time: skip the map's set-up
            return [ReceivedMessage(deliveries[0], self, self.codec)]
        # map() builds them without a Python frame per message.
        return list(map(ReceivedMessage, deliveries, repeat(self), repeat(self.codec)))

    def receive_deliveries(self, max_messages: int, wait: float) -> list[Delivery]:
        """:meth:`receive` without the message objects: the seam for runtimes that
        wrap each delivery in a message of their own (the twin of
        :meth:`AsyncConsumer.receive_deliveries`)."""
        deliveries = self._runner.run(self._core.receive(max_messages, wait))
        if self._payloads is not None and deliveries:
            self._payloads.resolve(deliveries)
        return deliveries

    def __iter__(self) -> Iterator[ReceivedMessage]:
        """Stream messages until the consumer is closed."""
        while True:
            try:
                batch = self.receive(1, ITERATION_WAIT)
            except Closed:
                return
            except QueueError as error:
                if not error.retryable:
                    raise
                log.warning("receiving from %s failed, trying again: %s", self.url, error)
                continue
            yield from batch

    def settle(self, delivery: Delivery, kind: Settlement, argument: float | str | None) -> None:
        """Carry out one settlement: the seam received messages and the worker
        runtime use. Applications call the message's own methods instead."""
        # acquire/release rather than ``with``: the with statement's look-ups of
        # __enter__ and __exit__ doubled the cost of the lock, once per message.
        lock = self._lock
        lock.acquire()
        try:
            if self._core.settle(delivery, kind, argument):
                self._runner.wake()
        finally:
            lock.release()

    def close(self) -> None:
        """Stop pulling, give back prefetched messages, flush settlements,
        release the driver. Idempotent and safe from any thread."""
        if self._core.closed:
            return
        self._runner.run(self._core.close())
        if threading.current_thread() is not self._worker:
            self._worker.join()
        with self._runner.lock:
            first, self._driver_closed = not self._driver_closed, True
        if first:
            self._driver.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
