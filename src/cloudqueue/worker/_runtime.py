"""The worker runtime: lanes per source (see _lanes.py), stop requests, shutdown in order.

Shutdown follows dramatiq's ``Worker.stop`` and Go CDK's ``Shutdown``: stop pulling,
let running handlers finish within the grace period, give back what was prefetched,
flush settlements, close. A second SIGTERM/SIGINT skips the grace period; settlements
already made are flushed either way, and unsettled messages return when their leases
end, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from ._lanes import Lanes, lanes_for

if TYPE_CHECKING:
    from ._app import App

__all__ = ["Runtime"]

log = logging.getLogger("cloudqueue.worker")


class Runtime:
    def __init__(self, app: App, *, grace: float) -> None:
        self.app = app
        self.grace = grace
        self.stopping = False
        self.forced = False
        self.serving = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self.sources: list[Lanes] = []

    # -- stop requests -------------------------------------------------------------

    def request_stop(self, force: bool) -> None:
        loop = self.loop
        if loop is None:
            return
        if threading.current_thread() is threading.main_thread() and _running_loop() is loop:
            self._stop_now(force)
        else:
            loop.call_soon_threadsafe(self._stop_now, force)

    def _stop_now(self, force: bool) -> None:
        self._stop.set()
        if force:
            self._force.set()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop.is_set():
            log.warning("received %s again: forcing shutdown", name)
            self._stop_now(True)
        else:
            log.warning(
                "received %s: stopping (waiting up to %gs for running handlers; send it again to force)",
                name, self.grace,
            )
            self._stop_now(False)

    # -- the run -------------------------------------------------------------------

    async def serve(self, *, handle_signals: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.sources = [lanes_for(route, self.app) for route in self.app.routes]
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
        failure: BaseException | None = None
        try:
            for source in self.sources:
                await source.open()
            self.serving = True
            for source in self.sources:
                source.start()
            log.info("worker started: %s", ", ".join(f"{s.route.name} <- {s.source}" for s in self.sources))
            stop_waiter = asyncio.create_task(self._stop.wait())
            waits: list[asyncio.Future[Any]] = [source.fatal for source in self.sources]
            done, _ = await asyncio.wait([*waits, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
            stop_waiter.cancel()
            for future in done:
                if future is not stop_waiter:
                    failure = future.exception()
                    log.error("source failed, stopping the worker: %s", failure)
            await self._shutdown()
        finally:
            self.serving = False
            for source in self.sources:
                await source.close()
                # A failure after the stop began is logged, not raised: the stop was asked for.
                if source.fatal.done():
                    late = source.fatal.exception()
                    if late is not None and late is not failure:
                        log.error("source %s failed while stopping: %s", source.source, late)
                else:
                    source.fatal.cancel()
            for signum in installed:
                self.loop.remove_signal_handler(signum)
            self.app.forced = self.forced
        if failure is not None:
            raise failure

    async def _shutdown(self) -> None:
        # 1. Stop pulling: receives under way end within poll_wait; what they bring
        #    is handled, as it is ours either way and handling beats giving back.
        self.stopping = True
        for source in self.sources:
            source.halt()
        await self._wait_or_force(asyncio.gather(*(s.pulls_ended() for s in self.sources)), None)
        # 2. Let running handlers finish within the grace period.
        lanes = [lane for source in self.sources for lane in source.running()]
        if lanes:
            log.info(
                "waiting up to %gs for %d running handlers", self.grace,
                sum(source.busy() for source in self.sources),
            )
            await self._wait_or_force(asyncio.wait(lanes), self.grace)
        left = sum(source.abandon_running() for source in self.sources)
        self.forced = self._force.is_set()
        if left:
            log.warning(
                "%d handlers still running after the grace period; their messages come back "
                "when their leases end", left,
            )
        await asyncio.sleep(0)  # let cancelled handlers unwind before the consumers close
        # 3 and 4 (give back prefetched, flush settlements, close) happen in serve()'s
        # finally, so that every exit path runs them.

    async def _wait_or_force(self, awaitable: Any, timeout: float | None) -> None:
        """Await ``awaitable`` until it ends, ``timeout`` passes or a forced stop comes."""
        force = asyncio.ensure_future(self._force.wait())
        work = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait([work, force], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            force.cancel()
            if not work.done():
                work.cancel()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
