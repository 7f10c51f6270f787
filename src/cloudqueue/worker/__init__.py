"""Run handlers as a long-lived worker: ``cloudqueue run module:app``.

::

    import cloudqueue
    from cloudqueue.worker import App, DoNotRetry

    app = App()

    @app.handler("sqlite:///shop.db?queue=orders", concurrency=8, max_attempts=5)
    def on_order(message: cloudqueue.ReceivedMessage) -> None:
        order = json.loads(message.body)        # raise -> retried with backoff
        if "id" not in order:
            raise DoNotRetry("order without id")  # -> dead-letter now

The same handler runs behind AWS Lambda, Azure Functions and Pub/Sub push with
:mod:`cloudqueue.serverless`. See docs/worker.md.
"""

from ._app import App, Route
from ._counters import FIELDS as COUNTER_NAMES
from ._counters import Counters
from ._handler import AsyncHandler, Handler, SyncHandler
from ._middleware import Middleware, Outcome, Skip
from ._policy import DoNotRetry, FailurePolicy

__all__ = [
    "COUNTER_NAMES",
    "App",
    "AsyncHandler",
    "Counters",
    "DoNotRetry",
    "FailurePolicy",
    "Handler",
    "Middleware",
    "Outcome",
    "Route",
    "Skip",
    "SyncHandler",
]
