"""Lanes: the long-lived tasks or threads that take messages and run a route's handler.

A route runs ``concurrency`` lanes; each takes one message at a time and runs the
handler inline, so the number of lanes is the concurrency and no task, future or
executor job is made per message (that was most of the worker's per-message cost).
The consumer's ``max_in_flight`` still caps what is held: running plus prefetched.

* Coroutine handlers (:class:`AsyncLanes`): tasks sharing one :class:`AsyncConsumer`.
  One lane at a time receives, asking for as many messages as lanes are idle; a lane
  that takes a message while more are ready wakes one idle lane, which does the same,
  so a handler that awaits spreads a batch over the lanes within a loop turn, while a
  handler that never awaits drains it in one lane without waking the others.
* Plain handlers (:class:`ThreadLanes`): threads sharing one blocking :class:`Consumer`
  the same way: one lane at a time receives, as many messages as lanes are waiting
  (more while the handler is quick), and wakes one waiting lane, which wakes the
  next if more are ready.

Both take part in the runtime's shutdown the same way: :meth:`halt` (stop pulling),
:meth:`pulls_ended` (the receives under way have returned), :meth:`running` (lanes
still working off what they received), :meth:`abandon_running`, :meth:`close`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .. import aio
from .._api import open_consumer
from ..errors import Closed, QueueError
from ._breaker import Breaker
from ._gate import Gate
from ._processing import Processor
from ._rate import TokenBucket
from ._tracing import process_tracer

if TYPE_CHECKING:
    from ..driver import Delivery
    from ._app import App, Route
    from ._counters import Tally

__all__ = ["AsyncLanes", "Lanes", "ThreadLanes", "lanes_for"]

log = logging.getLogger("cloudqueue.worker")

#: Pause after a receive failed even after the consumer's own retries (an outage).
OUTAGE_PAUSE = 1.0

#: Plain-handler lanes receive ahead of the waiting lanes while handlers are quick:
#: as many more as one lane runs in about this many seconds at the handler's last
#: measured pace, so that a halt, which lets the lanes run what was received, is
#: delayed by about this much at most.
AHEAD_BUDGET = 0.01

#: The most a plain-handler receive asks for beyond the waiting lanes' one each: a
#: receive of 100 is what the raw consumer loop uses, and batches of 8 (one per lane)
#: left a no-op handler's worker at 0.43x of that loop's CPU time, 100 at 0.64x.
MAX_AHEAD = 100


class Lanes:
    """One route while the worker runs: its consumer and its lanes."""

    def __init__(self, route: Route, app: App) -> None:
        self.route = route
        self.app = app
        self.consumer: Any = None  # Consumer (plain handlers) or AsyncConsumer (coroutines)
        self.processor: Processor | None = None
        self.source = "<not open>"
        self.gate: Gate | None = None
        #: Set once receiving must stop: the worker is stopping or the source failed.
        self.halted = False
        #: Fails with the error of a source that cannot go on (e.g. its queue is gone).
        self.fatal: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def open(self) -> None:
        route = self.route
        self.consumer = await self._open_consumer(
            route.url, max_in_flight=route.max_in_flight, max_lease_extension=route.max_lease_extension,
            sdk=route.sdk,
        )
        self.source = str(self.consumer.url)  # secrets redacted
        breaker = None if route.breaker is None else Breaker(route.breaker, self.source, route.counters)
        bucket = None if route.rate is None else TokenBucket(route.rate)
        #: Rate limit and circuit breaker, asked before each receive; None without either.
        self.gate = None if bucket is None and breaker is None else Gate(bucket, breaker, self.app.poll_wait)
        self.processor = Processor(
            route.handler,
            is_async=route.is_async,
            settle=self.consumer.settle,
            capabilities=self.consumer.capabilities,
            policy=route.policy,
            middleware=self.app.middleware,
            source=self.source,
            tracer=process_tracer(route, self.consumer),
            breaker=breaker,
            counters=route.counters,
        )

    async def _open_consumer(self, url: str, **options: Any) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def halt(self) -> None:
        """Stop pulling: lanes finish the messages they received, then end."""
        raise NotImplementedError

    async def pulls_ended(self) -> None:
        """Return once no receive is under way (after :meth:`halt`)."""
        raise NotImplementedError

    def running(self) -> list[asyncio.Future[Any]]:
        """Lanes that have not ended, as futures done when they end."""
        raise NotImplementedError

    def abandon_running(self) -> int:
        """Cancel running coroutine handlers; return how many handlers are left running."""
        raise NotImplementedError

    async def close(self) -> None:
        """Give back prefetched messages, flush settlements, release the driver."""
        raise NotImplementedError

    def busy(self) -> int:
        """Handlers running now."""
        return self.route.counters.snapshot()["in_flight"]

    def _receive_failed(self, error: QueueError) -> bool:
        """Deal with a failed receive; True when the lane should pause before the next."""
        if isinstance(error, Closed):
            self.halt()
            return False
        if not error.retryable:
            self.halt()
            self._report_fatal(error)
            return False
        log.warning("receiving from %s failed; trying again: %s", self.source, error)
        return True

    def _report_fatal(self, error: BaseException) -> None:
        """Fail :attr:`fatal` (from the event loop's thread)."""
        if not self.fatal.done():
            self.fatal.set_exception(error)


class AsyncLanes(Lanes):
    """Lanes as tasks on the worker's event loop, for coroutine handlers."""

    def __init__(self, route: Route, app: App) -> None:
        super().__init__(route, app)
        #: Received, waiting for a lane: never more than the lanes that were idle.
        self.ready: deque[Delivery] = deque()
        #: Lanes waiting for a message; each future's result says whether it was
        #: woken to take a ready message (True) or to look again (False).
        self.idle: deque[asyncio.Future[bool]] = deque()
        self.waking = 0  # lanes woken to take a message that have not run yet
        self.waiting = 0  # lanes without a message: idle, woken, or pulling
        self.pull: asyncio.Future[None] | None = None  # done when the receive under way ends
        self.tasks: list[asyncio.Task[None]] = []

    async def _open_consumer(self, url: str, **options: Any) -> Any:
        return aio.open_consumer(url, **options)

    def start(self) -> None:
        counters = self.route.counters
        self.tasks = [
            asyncio.create_task(self._lane(counters.tally()), name=f"cloudqueue {self.route.name} lane {n}")
            for n in range(self.route.concurrency)
        ]
        # A lane ending with an error is a bug, not a handler failure: stop the worker.
        for task in self.tasks:
            task.add_done_callback(self._lane_ended)

    async def _lane(self, tally: Tally) -> None:
        processor = self.processor
        assert processor is not None
        run = processor.run_async_plain if processor.plain else processor.run_async
        ready = self.ready
        while ready or await self._wait_for_message():
            delivery = ready.popleft()
            if ready and self.idle and not self.waking:
                # More are ready: hand the next to another lane, in case this handler awaits.
                self.waking += 1
                self.idle.popleft().set_result(True)
            try:
                await run(delivery, tally)
            except asyncio.CancelledError:
                raise
            except BaseException:
                # SystemExit and the like from a handler: its message is left to its lease.
                log.exception("handler for %s stopped abnormally", self.source)

    async def _wait_for_message(self) -> bool:
        """Wait until a message is ready (True) or the lane should end (False)."""
        self.waiting += 1
        try:
            while not self.ready:
                if self.pull is not None:
                    waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                    self.idle.append(waiter)
                    try:
                        woken_for_message = await waiter
                    except asyncio.CancelledError:
                        if waiter in self.idle:
                            self.idle.remove(waiter)
                        elif waiter.done() and not waiter.cancelled() and waiter.result():
                            self.waking -= 1
                        raise
                    if woken_for_message:
                        self.waking -= 1
                elif self.halted:
                    return False
                else:
                    await self._pull()
            return True
        finally:
            self.waiting -= 1

    async def _pull(self) -> None:
        done = self.pull = asyncio.get_running_loop().create_future()
        pause = False
        try:
            # A receive served from the consumer's buffer and a handler that never
            # awaits do not give the loop a turn: take one here, once per batch, so
            # settlements get flushed, signals handled and lanes woken earlier become
            # idle before the count below is taken.
            await asyncio.sleep(0)
            if not self.halted:
                # As many as there are lanes without a message (this one included):
                # more would wait here for a lane instead of in the consumer's buffer,
                # where close gives them back.
                wanted = self.waiting
                if self.gate is None:
                    deliveries = await self.consumer.receive_deliveries(wanted, self.app.poll_wait)
                else:
                    deliveries = await self._gated_receive(self.gate, wanted)
                if deliveries and self.processor is not None:
                    self.processor.look_at_telemetry()
                self.ready.extend(deliveries)
        except QueueError as error:
            pause = self._receive_failed(error)
        finally:
            self.pull = None
            done.set_result(None)
            if self.halted or not self.ready:
                self._wake_all()  # to end, to pull again or to take what came at a halt
        if pause:
            await asyncio.sleep(OUTAGE_PAUSE)

    async def _gated_receive(self, gate: Gate, wanted: int) -> list[Delivery]:
        """Receive once the gate admits it (nothing when halted while waiting)."""
        while True:
            if self.halted:
                return []
            granted, wait, probe = gate.admit(wanted)
            if granted:
                break
            await asyncio.sleep(wait)
        got: list[Delivery] = []
        try:
            got = await self.consumer.receive_deliveries(granted, self.app.poll_wait)
        finally:
            gate.received(granted, len(got), probe)
        return got

    def _wake_all(self) -> None:
        idle, self.idle = self.idle, deque()
        for waiter in idle:
            waiter.set_result(False)

    def _lane_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.halt()
            self._report_fatal(task.exception())  # type: ignore[arg-type]

    def halt(self) -> None:
        self.halted = True
        self._wake_all()

    async def pulls_ended(self) -> None:
        if self.pull is not None:
            await asyncio.wait([self.pull])

    def running(self) -> list[asyncio.Future[Any]]:
        return [task for task in self.tasks if not task.done()]

    def abandon_running(self) -> int:
        left = self.running()
        for task in left:
            task.cancel()  # the handler's message is left unsettled: back after its lease
        return len(left)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.consumer is not None:
            await self.consumer.aclose()


class ThreadLanes(Lanes):
    """Lanes as threads, for plain handlers.

    One lane at a time receives, asking for as many messages as lanes are waiting
    (itself included); it keeps one and leaves the rest in :attr:`ready`, from which
    the others take without a lock (``deque.popleft`` is atomic). A receive per
    message through the consumer's lock and engine cost more than the handler call
    itself; sharing one per batch is what brings the worker near the raw loop.

    While handlers are quick, a receive also asks for some messages beyond one per
    waiting lane (:meth:`_ahead`): about :data:`AHEAD_BUDGET` seconds of one lane's
    work at the pace a lane last ran handlers between two receives. A no-op handler
    then shares one receive among up to a hundred messages, as the raw consumer loop
    does; a handler that takes longer, or a route with a rate limit or circuit
    breaker, asks for one message per waiting lane, as before.

    Waiting lanes are woken one at a time, as the coroutine lanes are: after a receive
    one lane (to take a message or receive next), and a lane that takes a message
    while more are ready wakes the next unless one is already on its way. A handler
    that blocks spreads a batch over the lanes one wake-up after another; a handler
    that returns at once lets the receiving lane drain the batch before the woken one
    runs, instead of every waiting lane waking for one message (each wake-up a thread
    switch, together most of a no-op handler's cost).
    """

    def __init__(self, route: Route, app: App) -> None:
        super().__init__(route, app)
        self.lock = threading.Lock()  # guards halted, pulling and idle together
        #: Waiting lanes sleep here until a receive ends or the lanes halt.
        self.changed = threading.Condition(self.lock)
        #: Received, not yet taken by a lane: never more than the lanes that were waiting
        #: plus what :meth:`_ahead` allowed.
        self.ready: deque[Delivery] = deque()
        #: Seconds a handler took, as a lane last measured between two of its waits or
        #: receives (written by any lane: an estimate); none measured yet: infinite.
        self.handler_seconds = float("inf")
        self.pulling = False  # a lane is receiving
        self.idle = 0  # lanes waiting in ``changed`` for a message
        self.waking = 0  # of those, lanes notified that have not resumed yet
        self.halting = threading.Event()  # set with halted: cuts short a wait for the gate
        self.receives_over = asyncio.Event()  # set when the receive under way at a halt returns
        self.ended: list[asyncio.Future[None]] = []
        self.loop = asyncio.get_running_loop()

    async def _open_consumer(self, url: str, **options: Any) -> Any:
        return await asyncio.to_thread(open_consumer, url, **options)

    def start(self) -> None:
        counters = self.route.counters
        for n in range(self.route.concurrency):
            ended = self.loop.create_future()
            self.ended.append(ended)
            # Not daemon threads, as the pool's were: a handler still running after the
            # grace period is left to finish unless the stop is forced (the CLI then exits).
            threading.Thread(
                target=self._lane, args=(counters.tally(), ended),
                name=f"cloudqueue {self.route.name} lane {n}",
            ).start()

    def _lane(self, tally: Tally, ended: asyncio.Future[None]) -> None:
        processor = self.processor
        assert processor is not None
        run = processor.run_sync
        ready = self.ready
        # The handler's pace: handlers this lane ran back to back since it last waited
        # or received, and when that was (two clock reads per receive, not per message).
        ran, since = 0, time.monotonic()
        try:
            while True:
                try:
                    delivery = ready.popleft()
                except IndexError:
                    if ran:
                        self.handler_seconds = (time.monotonic() - since) / ran
                    more = self._wait_or_pull()
                    ran, since = 0, time.monotonic()
                    if more:
                        continue
                    return
                if ready and self.idle > self.waking:  # read without the lock: rechecked under it
                    self._wake_one()
                ran += 1
                try:
                    run(delivery, tally)
                except BaseException:
                    # SystemExit and the like from a handler: its message is left to its lease.
                    log.exception("handler for %s stopped abnormally", self.source)
        finally:
            self.loop.call_soon_threadsafe(_resolve, ended)

    def _wait_or_pull(self) -> bool:
        """With nothing ready: wait for the lane that is receiving, or receive; False
        once the lane should end (halted, and nothing left that it received)."""
        with self.lock:
            if self.ready:
                return True
            if self.halted:
                return False
            if self.pulling:
                self.idle += 1
                try:
                    self.changed.wait()
                finally:
                    self.idle -= 1
                    if self.waking:  # woken by _wake_one (or by a halt, when the count no longer matters)
                        self.waking -= 1
                return True
            self.pulling = True
            wanted = self.idle + 1 + self._ahead()
        got: list[Delivery] = []
        pause = False
        try:
            got = self._receive(wanted)
            if got and self.processor is not None:
                self.processor.look_at_telemetry()
        except QueueError as error:
            pause = self._receive_failed(error)
        finally:
            with self.lock:
                self.pulling = False
                self.ready.extend(got)
                if self.halted:
                    self.changed.notify_all()  # to end, or to take what came at the halt
                    self.loop.call_soon_threadsafe(self.receives_over.set)
                elif got and self.idle > self.waking:
                    # One waiting lane, to take the next message or, once they are
                    # taken, to receive next while this lane runs its handler (else a
                    # lane could sleep while the consumer holds messages for it); it
                    # wakes the next if more are ready. With nothing received the others
                    # sleep on: this lane receives again itself.
                    self.waking += 1
                    self.changed.notify()
        if pause:
            time.sleep(OUTAGE_PAUSE)
        return True

    def _ahead(self) -> int:
        """How many to receive beyond one per waiting lane: none behind a gate, whose
        circuit breaker must see each outcome before more is received (and whose
        rate limit is asked per receive), else as many as fit the budget."""
        if self.gate is not None:
            return 0
        seconds = self.handler_seconds
        if seconds <= 0.0:
            return MAX_AHEAD
        return min(MAX_AHEAD, int(AHEAD_BUDGET / seconds))

    def _wake_one(self) -> None:
        """Wake a waiting lane to take a ready message, unless one is on its way."""
        with self.lock:
            if self.idle > self.waking and not self.halted:
                self.waking += 1
                self.changed.notify()

    def _receive(self, wanted: int) -> list[Delivery]:
        """One receive of up to ``wanted`` messages, as far as the gate admits (as
        deliveries: the processor wraps each in a message of its own)."""
        gate = self.gate
        if gate is None:
            return self.consumer.receive_deliveries(wanted, self.app.poll_wait)  # type: ignore[no-any-return]
        granted, probe = self._admit(wanted)
        got: list[Delivery] = []
        try:
            if granted:
                got = self.consumer.receive_deliveries(granted, self.app.poll_wait)
        finally:
            gate.received(granted, len(got), probe)
        return got

    def _admit(self, wanted: int) -> tuple[int, bool]:
        """Wait until the gate admits a receive (or the lanes halt: then ``(0, False)``)."""
        assert self.gate is not None
        while not self.halting.is_set():
            granted, wait, probe = self.gate.admit(wanted)
            if granted:
                return granted, probe
            self.halting.wait(wait)
        return 0, False

    def _report_fatal(self, error: BaseException) -> None:
        self.loop.call_soon_threadsafe(super()._report_fatal, error)

    def halt(self) -> None:
        with self.lock:
            self.halted = True
            self.changed.notify_all()
        self.halting.set()

    async def pulls_ended(self) -> None:
        with self.lock:
            if not self.pulling:
                return
        await self.receives_over.wait()

    def running(self) -> list[asyncio.Future[Any]]:
        return [ended for ended in self.ended if not ended.done()]

    def abandon_running(self) -> int:
        return len(self.running())  # a thread cannot be cancelled: it runs on

    async def close(self) -> None:
        if self.consumer is not None:
            # Threads still running a handler after a forced stop keep running; their
            # settlements fail with Closed and the messages come back after their lease.
            await asyncio.to_thread(self.consumer.close)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def lanes_for(route: Route, app: App) -> Lanes:
    return AsyncLanes(route, app) if route.is_async else ThreadLanes(route, app)
