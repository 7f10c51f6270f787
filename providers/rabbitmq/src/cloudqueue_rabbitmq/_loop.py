"""The one event loop thread every AMQP call of this provider runs on.

Why aio-pika on a loop thread, not pika's BlockingConnection: measured on this machine
against the Debian rabbitmq-server 3.10 (one quorum queue, 5,000 messages of 100 bytes,
publisher confirms on, prefetch 100), pika's blocking channel sent 592 msg/s, because a
blocking channel with confirms waits for each message's confirm before the next publish,
while aio-pika sent 2,419 msg/s with the confirms of a batch awaited together. pika received
and acked faster (14,569 vs 3,821 msg/s), but a round trip of 20,000 messages costs about
35 s with pika and 13 s with aio-pika: sending dominates.

Why one thread: an AMQP connection and its channels are not safe to use from several
threads. Every call of the drivers (sync, from any thread, or async, from any event loop)
is handed to this loop, so one connection is only ever touched by one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an asyncio loop; coroutines are submitted to it."""

    def __init__(self, name: str = "cloudqueue-rabbitmq") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it (from a thread other than the loop's)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop")
        return self.submit(coro).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the loop, from any other event loop; cancelling the
        caller cancels it there too."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
