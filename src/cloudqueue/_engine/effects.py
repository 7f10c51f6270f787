"""Effects yielded by engine operations, and the two runners that perform them."""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar, cast

if TYPE_CHECKING:
    from ..driver import SubscriptionDriver, TopicDriver

__all__ = [
    "WAKE", "AsyncRunner", "Call", "Calls", "Idle", "Op", "Sleep", "Step", "SyncRunner", "Wait",
    "async_calls", "concurrently", "sync_calls",
]

T = TypeVar("T")


class Op(enum.IntEnum):
    """The driver methods the engine calls. An int enum: it keys the runners'
    call tables on every hot path, and hashes as fast as an int."""

    SEND = enum.auto()
    RECEIVE = enum.auto()
    ACK = enum.auto()
    NACK = enum.auto()
    RELEASE = enum.auto()
    EXTEND = enum.auto()
    DEAD_LETTER = enum.auto()
    INTERRUPT = enum.auto()


#: Call the driver method ``op`` with ``args``: a plain ``(op, args)`` tuple, the
#: one effect on every hot path, where building a NamedTuple would cost more than
#: the tuple's own work.
Call: TypeAlias = tuple[Op, tuple[Any, ...]]

SyncCalls: TypeAlias = Mapping[Op, Callable[..., Any]]
AsyncCalls: TypeAlias = Mapping[Op, Callable[..., Awaitable[Any]]]


def sync_calls(driver: TopicDriver | SubscriptionDriver) -> SyncCalls:
    """The blocking driver methods behind each :class:`Op` (bound once per driver)."""
    from ..driver import TopicDriver

    if isinstance(driver, TopicDriver):
        return {Op.SEND: driver.send_batch}
    return {
        Op.RECEIVE: driver.receive_batch, Op.ACK: driver.ack, Op.NACK: driver.nack,
        Op.RELEASE: driver.release, Op.EXTEND: driver.extend, Op.DEAD_LETTER: driver.dead_letter,
        Op.INTERRUPT: driver.interrupt_receives,
    }


def async_calls(driver: TopicDriver | SubscriptionDriver) -> AsyncCalls:
    """The coroutine twins behind each :class:`Op`."""
    from ..driver import TopicDriver

    if isinstance(driver, TopicDriver):
        return {Op.SEND: driver.asend_batch}
    return {
        Op.RECEIVE: driver.areceive_batch, Op.ACK: driver.aack, Op.NACK: driver.anack,
        Op.RELEASE: driver.arelease, Op.EXTEND: driver.aextend, Op.DEAD_LETTER: driver.adead_letter,
        Op.INTERRUPT: driver.ainterrupt_receives,
    }


class Calls(NamedTuple):
    """Make several driver calls at once, all on the wire together. Answered with
    one outcome per call, in order: the call's value, or the exception it raised
    (driver methods return lists or None, never exceptions, so the two cannot be
    confused). Only a cancellation of the runner's own caller is raised instead."""

    calls: tuple[Call, ...]


class Sleep(NamedTuple):
    """Sleep without holding the lock (backoff between retries)."""

    seconds: float


class Wait(NamedTuple):
    """Release the lock until woken by a ``WAKE`` or until ``timeout`` seconds pass."""

    timeout: float | None


class Idle(NamedTuple):
    """A background worker's ``Wait``: only a ``WAKE`` (or the runner's ``wake()``)
    ends it early, not the end of every other step. Woken at the end of each
    receive, the consumer's worker cost a thread wake-up per receive."""

    timeout: float | None


class _Wake:
    """Wake every operation blocked in a ``Wait`` or an ``Idle``."""


WAKE = _Wake()

Effect: TypeAlias = Call | Calls | Sleep | Wait | Idle | _Wake
Step: TypeAlias = Generator[Effect, Any, T]

#: Worker threads a SyncRunner may start for :class:`Calls` (made on first use, so a
#: runner that never overlaps calls starts none; idle ones end when the runner is
#: collected or the interpreter exits). A cap, not a target: the engine asks for at
#: most ``max_concurrent_batches`` calls at once.
_MAX_CALL_THREADS = 16


def concurrently(steps: Sequence[Step[T]]) -> Step[list[T]]:
    """Run ``steps`` with their first driver calls in flight together (one
    :class:`Calls`); what each does after that (a retry's sleep and call) it does
    alone, one step after another. Returns their results in order. Steps whose
    first effect is not a call run alone too."""
    results: list[Any] = [None] * len(steps)
    started: list[tuple[int, Step[T], Call]] = []
    try:
        alone: list[tuple[int, Step[T], Any]] = []
        for index, step in enumerate(steps):
            try:
                effect = next(step)
            except StopIteration as stop:
                results[index] = stop.value
                continue
            if type(effect) is tuple:
                started.append((index, step, cast(Call, effect)))
            else:
                alone.append((index, step, effect))
        if len(started) == 1:  # nothing to overlap: no thread hand-off
            alone.insert(0, started.pop())
        if started:
            outcomes = yield Calls(tuple(call for _, _, call in started))
            for (index, step, _), outcome in zip(started, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    results[index] = yield from _resume(step, None, outcome)
                else:
                    results[index] = yield from _resume(step, outcome, None)
        for index, step, effect in alone:
            results[index] = yield from _continue(step, effect)
    finally:
        for step in steps:
            step.close()  # no-op for finished steps; unwinds the rest if we were interrupted
    return results


def _continue(step: Step[T], effect: Any) -> Step[T]:
    """Drive ``step`` on from its already-taken ``effect``."""
    try:
        value = yield effect
    except BaseException as exc:  # handed to the step; cancellation re-raises there
        return (yield from _resume(step, None, exc))
    return (yield from _resume(step, value, None))


def _resume(step: Step[T], value: Any, error: BaseException | None) -> Step[T]:
    """Drive ``step`` to its end, starting by handing it ``value`` or ``error``."""
    while True:
        try:
            effect = step.send(value) if error is None else step.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value = error = None
        try:
            value = yield effect
        except BaseException as exc:  # handed to the step; cancellation re-raises there
            error = exc


class SyncRunner:
    """Runs steps in the calling thread; the step's code runs under ``lock``."""

    __slots__ = ("_pool", "calls", "condition", "idle", "idling", "lock", "waiting")

    def __init__(self, driver: TopicDriver | SubscriptionDriver) -> None:
        self.calls = sync_calls(driver)
        self._pool: ThreadPoolExecutor | None = None
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        self.idle = threading.Condition(self.lock)
        # Threads blocked in a Wait, and in an Idle: notifying costs microseconds
        # even with nobody waiting, and the hot paths notify often.
        self.waiting = 0
        self.idling = 0

    def run(self, step: Step[T]) -> T:
        # acquire/release by hand: a with statement's __enter__/__exit__ look-ups cost
        # as much as the lock itself (timeit, p2-memory: 2.36 us vs 0.99 us), twice
        # per one-at-a-time round trip.
        self.lock.acquire()
        try:
            return self._drive(step)
        finally:
            # A step that ended may have left work for others (a batch it
            # was carrying, a slot it freed): let waiters look again.
            if self.waiting:
                self.condition.notify_all()
            self.lock.release()

    def _drive(self, step: Step[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = step.send(value) if error is None else step.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            kind = type(effect)
            if kind is tuple:  # a Call
                self.lock.release()
                try:
                    op, args = cast(Call, effect)
                    value = self.calls[op](*args)
                except BaseException as exc:  # handed to the step; cancellation re-raises there
                    error = exc
                finally:
                    self.lock.acquire()
                continue
            if kind is Calls:
                self.lock.release()
                try:
                    value = self._run_together(effect.calls)  # type: ignore[union-attr]
                except BaseException as exc:  # the caller's own cancellation
                    error = exc
                finally:
                    self.lock.acquire()
                continue
            if kind is Wait:
                self.waiting += 1
                try:
                    self.condition.wait(effect.timeout)  # type: ignore[union-attr]
                finally:
                    self.waiting -= 1
                continue
            if effect is WAKE:
                self.wake()
                continue
            if kind is Idle:
                self.idling += 1
                try:
                    self.idle.wait(effect.timeout)  # type: ignore[union-attr]
                finally:
                    self.idling -= 1
                continue
            self.lock.release()  # a Sleep
            try:
                time.sleep(effect.seconds)  # type: ignore[union-attr]
            except BaseException as exc:  # handed to the step; cancellation re-raises there
                error = exc
            finally:
                self.lock.acquire()

    def _run_together(self, calls: tuple[Call, ...]) -> list[Any]:
        """All but the first call on the pool, the first in this thread (a drivers'
        contract: callable from several threads). An interrupt while waiting is
        raised; the calls already started then finish unobserved, as one
        interrupted call would have."""
        pool = self._pool
        if pool is None:
            # Under no lock: two threads racing here each make a pool and one is
            # dropped unused, which costs nothing (threads start on first submit).
            pool = self._pool = ThreadPoolExecutor(
                _MAX_CALL_THREADS, thread_name_prefix="cloudqueue-call"
            )
        table = self.calls
        futures: list[Future[Any]] = [pool.submit(table[op], *args) for op, args in calls[1:]]
        outcomes: list[Any] = [None] * len(calls)
        op, args = calls[0]
        try:
            outcomes[0] = table[op](*args)
        except Exception as exc:  # an outcome; a cancellation propagates
            outcomes[0] = exc
        for index, future in enumerate(futures, 1):
            try:
                outcomes[index] = future.result()
            except Exception as exc:
                outcomes[index] = exc
        return outcomes

    def wake(self) -> None:
        """Wake every ``Wait`` and ``Idle``; the caller holds ``lock``."""
        if self.waiting:
            self.condition.notify_all()
        if self.idling:
            self.idle.notify_all()


class AsyncRunner:
    """Runs steps as coroutines on one event loop; steps never interleave
    between effects, so the loop itself is the lock."""

    __slots__ = ("_idlers", "_waiters", "calls")

    def __init__(self, driver: TopicDriver | SubscriptionDriver) -> None:
        self.calls = async_calls(driver)
        self._waiters: set[asyncio.Future[None]] = set()
        self._idlers: set[asyncio.Future[None]] = set()

    async def run(self, step: Step[T]) -> T:
        try:
            return await self._drive(step)
        finally:
            # A step that ended may have left work for others (see SyncRunner.run).
            self._resolve_waiters()

    async def _drive(self, step: Step[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = step.send(value) if error is None else step.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            try:
                kind = type(effect)
                if kind is tuple:  # a Call
                    op, args = cast(Call, effect)
                    value = await self.calls[op](*args)
                elif kind is Calls:
                    value = await self._run_together(effect.calls)  # type: ignore[union-attr]
                elif kind is Wait:
                    await self._wait(self._waiters, effect.timeout)  # type: ignore[union-attr]
                elif kind is Idle:
                    await self._wait(self._idlers, effect.timeout)  # type: ignore[union-attr]
                elif kind is Sleep:
                    await asyncio.sleep(effect.seconds)  # type: ignore[union-attr]
                else:
                    self.wake()
            except BaseException as exc:  # handed to the step; cancellation re-raises there
                error = exc

    async def _run_together(self, calls: tuple[Call, ...]) -> list[Any]:
        table = self.calls
        outcomes = await asyncio.gather(
            *(table[op](*args) for op, args in calls), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, asyncio.CancelledError):
                # A call cancelled by itself is this task's cancellation too (a
                # driver never cancels on its own): raised, not an outcome.
                raise outcome
        return outcomes

    @staticmethod
    async def _wait(waiters: set[asyncio.Future[None]], timeout: float | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.add(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            pass
        finally:
            waiters.discard(future)

    def wake(self) -> None:
        """Wake every ``Wait`` and ``Idle``."""
        self._resolve_waiters()
        if self._idlers:
            _resolve(self._idlers)

    def _resolve_waiters(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, set()
            _resolve(waiters)


def _resolve(futures: set[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
