"""The blocking twins: run one coroutine on a private event loop in a helper thread.

A helper thread, not ``asyncio.run`` in the caller's thread, so that the blocking
functions also work when called from code already running inside an event loop
(a notebook, an async web handler calling a sync helper). Ctrl-C in the caller
cancels the coroutine, which then cleans up (gives back what it holds) before the
KeyboardInterrupt goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_blocking"]

T = TypeVar("T")

#: Seconds between looks for Ctrl-C while the coroutine runs.
_SLICE = 0.2


def run_blocking(coroutine: Coroutine[Any, Any, T], name: str) -> T:
    """Run ``coroutine`` to its end on a fresh event loop in a helper thread."""
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
    started = threading.Event()
    loop = asyncio.new_event_loop()
    task_box: list[asyncio.Task[T]] = []

    async def main() -> T:
        task_box.append(asyncio.current_task())  # type: ignore[arg-type]
        started.set()
        return await coroutine

    def thread_body() -> None:
        try:
            outcome.set_result(loop.run_until_complete(main()))
        except BaseException as error:  # handed to the caller's thread, raised there
            outcome.set_exception(error)
        finally:
            started.set()
            loop.close()

    helper = threading.Thread(target=thread_body, name=f"cloudqueue {name}", daemon=True)
    helper.start()
    try:
        while True:
            # Waited for in slices: a wait without timeout is not interrupted by a
            # SIGINT that the kernel hands to the helper thread, so Ctrl-C would hang.
            try:
                return outcome.result(timeout=_SLICE)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        started.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to cancel
            if task_box:
                loop.call_soon_threadsafe(task_box[0].cancel)
        helper.join()
        raise
    finally:
        helper.join()
