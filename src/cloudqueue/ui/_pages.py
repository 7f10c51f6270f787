"""The console's routes: pages, their JSON twins, and the action POSTs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import aio
from ..errors import QueueError
from . import _actions
from ._chart import HEIGHT, WIDTH, chart
from ._destinations import Destination
from ._guard import CSRF_COOKIE, CSRF_FIELD, csrf_problem, new_secret
from ._sampler import Sampler
from ._stats import read_all, read_one
from ._views import STAT_NAMES, dead_letter_detail, dead_letter_row, reading_json, stat_cells

__all__ = ["Console", "routes"]

#: Dead letters listed on a queue page, and searched for one opened by id.
LISTED_DEAD_LETTERS = 100
SEARCHED_DEAD_LETTERS = 1000
_FLASHES = {"sent": "Sent message {id}", "purged": "Purged {name}"}


class Console:
    """What every route needs: the destinations, the sampler, the templates, the mode."""

    def __init__(
        self, destinations: list[Destination], sampler: Sampler, env: Environment, read_only: bool
    ) -> None:
        self.destinations = destinations
        self.sampler = sampler
        self.env = env
        self.read_only = read_only

    def destination(self, request: Request) -> Destination | None:
        text = request.path_params["index"]
        if not text.isdigit() or int(text) >= len(self.destinations):
            return None
        return self.destinations[int(text)]

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or new_secret()
        html = self.env.get_template(template).render(
            read_only=self.read_only, csrf_field=CSRF_FIELD, csrf=csrf, stat_names=STAT_NAMES,
            quote=_quote, **context,
        )
        response = HTMLResponse(html, status)
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    def error(self, request: Request, message: str, status: int) -> HTMLResponse:
        return self.page(request, "error.html", status, message=message)


def _quote(text: str) -> str:
    return quote(text, safe="")


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _describe(error: QueueError) -> str:
    return " ".join(f"{error.code.value}: {error}".split())


async def overview(request: Request) -> Response:
    console = _console(request)
    readings = await read_all(console.destinations)
    rows = [(reading, stat_cells(reading)) for reading in readings]
    return console.page(request, "overview.html", rows=rows)


async def stats_json(request: Request) -> Response:
    readings = await read_all(_console(request).destinations)
    return JSONResponse({"destinations": [reading_json(reading) for reading in readings]})


async def queue_page(request: Request) -> Response:
    console = _console(request)
    destination = console.destination(request)
    if destination is None:
        return console.error(request, "no such destination", 404)
    reading = await read_one(destination)
    now = datetime.now(UTC)
    dead, dead_error = [], None
    try:
        dead = [dead_letter_row(m, now) for m in await aio.dead_letters(destination.url, LISTED_DEAD_LETTERS)]
    except QueueError as error:
        dead_error = _describe(error)
    return console.page(
        request, "queue.html", destination=destination, reading=reading, cells=stat_cells(reading),
        dead=dead, dead_error=dead_error, flash=_flash(request, destination),
        chart=_chart(console, destination), width=WIDTH, height=HEIGHT,
    )


def _flash(request: Request, destination: Destination) -> str | None:
    """The line saying what the action that redirected here did."""
    done = request.query_params.get("done", "")
    if done not in _FLASHES:
        return None
    return _FLASHES[done].format(id=request.query_params.get("id", ""), name=destination.name)


def _chart(console: Console, destination: Destination) -> Any:
    return chart(console.sampler.samples(destination.index), time.time(), console.sampler.history)


async def chart_fragment(request: Request) -> Response:
    console = _console(request)
    destination = console.destination(request)
    if destination is None:
        return PlainTextResponse("no such destination", 404)
    html = console.env.get_template("chart.html").render(
        chart=_chart(console, destination), width=WIDTH, height=HEIGHT
    )
    return HTMLResponse(html)


async def history_json(request: Request) -> Response:
    console = _console(request)
    destination = console.destination(request)
    if destination is None:
        return JSONResponse({"error": "no such destination"}, 404)
    samples = console.sampler.samples(destination.index)
    return JSONResponse({"samples": [
        {"t": s.t, "available": s.available, "in_flight": s.in_flight, "dead_letters": s.dead_letters}
        for s in samples
    ]})


async def dead_letter_page(request: Request) -> Response:
    console = _console(request)
    destination = console.destination(request)
    if destination is None:
        return console.error(request, "no such destination", 404)
    wanted = request.path_params["message_id"]
    try:
        found = await aio.dead_letters(destination.url, SEARCHED_DEAD_LETTERS)
    except QueueError as error:
        return console.error(request, _describe(error), 502)
    message = next((m for m in found if m.id == wanted), None)
    if message is None:
        return console.error(
            request, f"no dead letter with that id among the first {SEARCHED_DEAD_LETTERS}", 404
        )
    detail = dead_letter_detail(message, datetime.now(UTC))
    return console.page(request, "dead_letter.html", destination=destination, message=detail)


async def _checked_post(request: Request) -> tuple[Console, Destination, Any] | Response:
    """The console, destination and form of an action POST, or the refusal to send."""
    console = _console(request)
    if console.read_only:
        return PlainTextResponse("read-only console: actions are disabled", 403)
    destination = console.destination(request)
    if destination is None:
        return PlainTextResponse("no such destination", 404)
    form = await request.form()
    problem = csrf_problem(request, form.get(CSRF_FIELD))
    if problem is not None:
        return PlainTextResponse(problem, 403)
    return console, destination, form


async def redrive_action(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    console, destination, form = checked
    dry_run = form.get("dry_run") == "1"
    fields = {name: str(form.get(name) or "") for name in ("where", "reason", "limit")}
    ids = [str(value) for value in form.getlist("id")]
    try:
        selection = _actions.RedriveSelection.parse(ids, **fields)
        report = await _actions.redrive(destination, selection, dry_run=dry_run)
    except _actions.ActionError as error:
        return console.error(request, str(error), 400)
    except QueueError as error:
        return console.error(request, _describe(error), 400)
    template = "redrive_preview.html" if dry_run else "redrive_result.html"
    return console.page(request, template, destination=destination, report=report, ids=ids, form=fields)


async def purge_action(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    console, destination, form = checked
    try:
        await _actions.purge_confirmed(destination, str(form.get("confirm") or ""))
    except _actions.ActionError as error:
        return console.error(request, str(error), 400)
    except QueueError as error:
        return console.error(request, _describe(error), 400)
    return RedirectResponse(f"/queues/{destination.index}?done=purged", 303)


async def send_action(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    console, destination, form = checked
    try:
        message_id = await _actions.send(
            destination, str(form.get("body") or ""), str(form.get("attributes") or "")
        )
    except _actions.ActionError as error:
        return console.error(request, str(error), 400)
    except QueueError as error:
        return console.error(request, _describe(error), 400)
    return RedirectResponse(f"/queues/{destination.index}?done=sent&id={_quote(message_id)}", 303)


async def script(request: Request) -> Response:
    text = resources.files(__package__).joinpath("static/ui.js").read_text(encoding="utf-8")
    return Response(text, media_type="text/javascript")


routes = [
    Route("/", overview),
    Route("/api/stats", stats_json),
    Route("/queues/{index}", queue_page),
    Route("/queues/{index}/chart", chart_fragment),
    Route("/api/queues/{index}/history", history_json),
    Route("/queues/{index}/dead-letters/{message_id:path}", dead_letter_page),
    Route("/queues/{index}/redrive", redrive_action, methods=["POST"]),
    Route("/queues/{index}/purge", purge_action, methods=["POST"]),
    Route("/queues/{index}/send", send_action, methods=["POST"]),
    Route("/static/ui.js", script),
]
