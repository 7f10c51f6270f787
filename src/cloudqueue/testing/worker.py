"""Running a worker :class:`~cloudqueue.worker.App` inside a test, until something holds.

::

    from cloudqueue.testing.worker import serve_until

    serve_until(app, lambda: app.counters()["processed"] == 3)

The app serves on a private event loop until ``done()`` holds (checked every 10 ms),
then stops as it would on SIGTERM. The timeout only ends a hang: it fails the test with
the app's counters, and so does the app stopping on its own before ``done()`` holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the worker is imported by the caller already; keep this cheap
    from ..worker import App

__all__ = ["aserve_until", "serve_until"]

#: Seconds between two looks at ``done()``.
_POLL = 0.01


def serve_until(app: App, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Serve ``app`` until ``done()`` holds, then stop it (blocking)."""
    asyncio.run(aserve_until(app, done, timeout))


async def aserve_until(app: App, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Serve ``app`` in the running loop until ``done()`` holds, then stop it."""
    serving = asyncio.create_task(app.serve(grace=5.0))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if serving.done():
                raise AssertionError(
                    f"the app stopped before the condition held: {app.counters()}"
                ) from serving.exception()
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met in {timeout} s: {app.counters()}")
            await asyncio.sleep(_POLL)
    finally:
        app.stop()
        await serving
