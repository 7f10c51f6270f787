"""Pub/Sub push served over ASGI (``pubsub_push``) and WSGI (``pubsub_push_wsgi``).

Both speak the raw interfaces (no framework): the request handling is in :mod:`._pubsub`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..offload import Offload
from ._pubsub import (
    MAX_BODY,
    HttpAnswer,
    PushRequestError,
    answer_for,
    check_request,
    delivery_from_push,
    runner_for,
)

__all__ = ["pubsub_push", "pubsub_push_wsgi"]

log = logging.getLogger("cloudqueue.serverless")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _refused(error: PushRequestError) -> HttpAnswer:
    log.warning("Pub/Sub push: request refused (%d): %s", error.status, error)
    return error.status, str(error)


def pubsub_push(handler: Callable[..., Any], *, offload: Offload | None = None) -> AsgiApp:
    """An ASGI app answering Pub/Sub push requests and Eventarc
    ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvents (binary and
    structured) by running ``handler`` on the message: 204 when it succeeded, 500 when
    it failed (Pub/Sub redelivers with the subscription's backoff), 400 with the reason
    for a malformed request, 405 for a method other than POST, 413 for a body above
    16 MiB. Serve it with any ASGI server, e.g. ``uvicorn push:app --host 0.0.0.0
    --port $PORT`` for ``app = pubsub_push(handler)`` in ``push.py`` (as in
    ``examples/orders/cloudrun/``); for WSGI servers use :func:`pubsub_push_wsgi`.

    ``offload``: a message carrying a claim check (``cloudqueue.payload``) gets its
    payload from this location before the handler runs; only pointers inside it are
    fetched. A payload that cannot be read (or any pointer, without ``offload``) makes
    ``body`` raise ``PayloadUnavailable``: the handler fails and the answer is 500.
    Payloads are kept (``delete_after_ack`` is refused: Pub/Sub records the 2xx answer
    as the ack after the app returns, and the app never learns whether it did; expire
    them with a lifecycle rule, see docs/large-messages.md).
    """
    runner = runner_for(handler, offload, "pubsub_push")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise RuntimeError(f"Pub/Sub push serves HTTP, not {scope['type']!r}")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        try:
            length = int(headers["content-length"]) if "content-length" in headers else None
            check_request(scope["method"], length)
            body = await _read_body(receive)
            delivery = delivery_from_push(headers, body)
        except PushRequestError as error:
            status, text = _refused(error)
        except ValueError:
            status, text = _refused(PushRequestError(400, "content-length is not a number"))
        else:
            # The request's trace context parents the process span (HTTP server
            # conventions); the message's own context is linked.
            status, text = answer_for(await runner.run_one_async(delivery, headers))
        await _respond(send, status, text)

    return app


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise PushRequestError(400, "client went away before the body was read")
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PushRequestError(413, f"request body exceeds {MAX_BODY} bytes")
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


_REASONS = {204: "No Content", 400: "Bad Request", 405: "Method Not Allowed", 413: "Payload Too Large",
            500: "Internal Server Error"}


def pubsub_push_wsgi(
    handler: Callable[..., Any], *, offload: Offload | None = None
) -> Callable[..., Iterable[bytes]]:
    """The WSGI twin of :func:`pubsub_push` (gunicorn, mod_wsgi, Functions Framework's
    Flask): same requests, same answers, same ``offload``. A coroutine handler runs in a
    fresh event loop per request."""
    runner = runner_for(handler, offload, "pubsub_push_wsgi")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            raw_length = environ.get("CONTENT_LENGTH") or ""
            length = int(raw_length) if raw_length else None
            check_request(environ.get("REQUEST_METHOD", ""), length)
            body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise PushRequestError(413, f"request body exceeds {MAX_BODY} bytes")
            delivery = delivery_from_push(headers, body)
        except PushRequestError as error:
            status, text = _refused(error)
        except ValueError:
            status, text = _refused(PushRequestError(400, "content-length is not a number"))
        else:
            result = (
                asyncio.run(runner.run_async(delivery, headers)) if runner.is_async
                else runner.run_sync(delivery, headers)
            )
            status, text = answer_for(result)
        body_out = text.encode("utf-8")
        start_response(f"{status} {_REASONS.get(status, '')}".strip(), [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body_out)))
        ])
        return [body_out]

    return app
