"""Effects yielded by engine operations, and the two runners that perform them."""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar, cast

if TYPE_CHECKING:
    from ..driver import SubscriptionDriver, TopicDriver

__all__ = [
    "WAKE", "AsyncRunner", "Call", "Op", "Sleep", "Step", "SyncRunner", "Wait",
    "async_calls", "sync_calls",
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


class Sleep(NamedTuple):
    """Sleep without holding the lock (backoff between retries)."""

    seconds: float


class Wait(NamedTuple):
    """Release the lock until woken by a ``WAKE`` or until ``timeout`` seconds pass."""

    timeout: float | None


class _Wake:
    """Wake every operation blocked in a ``Wait``."""


WAKE = _Wake()

Effect: TypeAlias = Call | Sleep | Wait | _Wake
Step: TypeAlias = Generator[Effect, Any, T]


class SyncRunner:
    """Runs steps in the calling thread; the step's code runs under ``lock``."""

    __slots__ = ("calls", "condition", "lock", "waiting")

    def __init__(self, driver: TopicDriver | SubscriptionDriver) -> None:
        self.calls = sync_calls(driver)
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        # Threads blocked in a Wait: notifying costs microseconds even with
        # nobody waiting, and the hot paths notify often.
        self.waiting = 0

    def run(self, step: Step[T]) -> T:
        with self.lock:
            try:
                return self._drive(step)
            finally:
                # A step that ended may have left work for others (a batch it
                # was carrying, a slot it freed): let waiters look again.
                if self.waiting:
                    self.condition.notify_all()

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
            if kind is Wait:
                self.waiting += 1
                try:
                    self.condition.wait(effect.timeout)  # type: ignore[union-attr]
                finally:
                    self.waiting -= 1
                continue
            if effect is WAKE:
                if self.waiting:
                    self.condition.notify_all()
                continue
            self.lock.release()  # a Sleep
            try:
                time.sleep(effect.seconds)  # type: ignore[union-attr]
            except BaseException as exc:  # handed to the step; cancellation re-raises there
                error = exc
            finally:
                self.lock.acquire()

    def wake(self) -> None:
        """Wake waiters; the caller holds ``lock``."""
        if self.waiting:
            self.condition.notify_all()


class AsyncRunner:
    """Runs steps as coroutines on one event loop; steps never interleave
    between effects, so the loop itself is the lock."""

    __slots__ = ("_waiters", "calls")

    def __init__(self, driver: TopicDriver | SubscriptionDriver) -> None:
        self.calls = async_calls(driver)
        self._waiters: set[asyncio.Future[None]] = set()

    async def run(self, step: Step[T]) -> T:
        try:
            return await self._drive(step)
        finally:
            self.wake()

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
                elif kind is Wait:
                    await self._wait(effect.timeout)  # type: ignore[union-attr]
                elif kind is Sleep:
                    await asyncio.sleep(effect.seconds)  # type: ignore[union-attr]
                else:
                    self.wake()
            except BaseException as exc:  # handed to the step; cancellation re-raises there
                error = exc

    async def _wait(self, timeout: float | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(future)

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)
