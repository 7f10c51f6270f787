"""``create_app``: the console as one Starlette application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware

from .._secrets import register_secret
from ..errors import InvalidArgument
from ._destinations import destinations as parse_destinations
from ._guard import TokenGuard
from ._pages import Console, routes
from ._sampler import Sampler

__all__ = ["create_app"]

#: Fastest sampling allowed: each sample reads the stats of every destination.
MIN_SAMPLE_INTERVAL = 0.1
#: Longest history kept (samples live in memory).
MAX_HISTORY = 24 * 3600.0


def create_app(
    urls: Sequence[str],
    *,
    read_only: bool = False,
    token: str | None = None,
    sample_interval: float = 5.0,
    history: float = 3600.0,
) -> Starlette:
    """The console for the destinations ``urls`` (queues or subscriptions of any provider).

    ``read_only``: no action is offered, and every POST is refused with 403. ``token``:
    every request must carry it (header ``Authorization: Bearer``, or the cookie set by
    visiting a page once with ``?token=``); without one, only requests addressed to a
    loopback host name are answered. A background task reads every destination's stats
    every ``sample_interval`` seconds and keeps ``history`` seconds of them for the
    charts; it runs while the application is served (its lifespan).
    """
    if not isinstance(sample_interval, (int, float)) or not sample_interval >= MIN_SAMPLE_INTERVAL:
        raise InvalidArgument(
            f"sample_interval must be at least {MIN_SAMPLE_INTERVAL} s, not {sample_interval!r}"
        )
    if not isinstance(history, (int, float)) or not 0 < history <= MAX_HISTORY:
        raise InvalidArgument(f"history must be above 0 and at most {MAX_HISTORY:.0f} s, not {history!r}")
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            raise InvalidArgument("token must be a string of at least 16 characters")
        register_secret(token)  # scrubbed from every log line (uvicorn logs request paths)
    found = parse_destinations(urls)
    sampler = Sampler(found, float(sample_interval), float(history))
    env = Environment(
        loader=PackageLoader("cloudqueue.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sampler.start()
        try:
            yield
        finally:
            await sampler.stop()

    app = Starlette(routes=routes, middleware=[Middleware(TokenGuard, token=token)], lifespan=lifespan)
    app.state.console = Console(found, sampler, env, bool(read_only))
    return app
