"""Who may talk to the console: the access token, loopback-only host names, and the
cross-site checks every action (POST) passes.

- With a token, every request needs it: ``Authorization: Bearer <token>``, or the
  cookie set by visiting a page once with ``?token=<token>``.
- Without one (the console is bound to loopback), the ``Host`` header must be a
  loopback name: a web page cannot then reach the console by rebinding its own DNS
  name to 127.0.0.1 and reading it from the victim's browser.
- A POST needs the CSRF token of its form equal to the one in its cookie, and an
  ``Origin`` (else ``Referer``) that is this console.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "TOKEN_COOKIE",
    "TokenGuard",
    "csrf_problem",
    "is_loopback",
    "new_secret",
]

TOKEN_COOKIE = "cloudqueue_ui_token"
CSRF_COOKIE = "cloudqueue_ui_csrf"
CSRF_FIELD = "csrf_token"


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (with or without brackets)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenGuard:
    """ASGI middleware in front of every route (lifespan events pass through)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            host = request.url.hostname or ""
            if is_loopback(host):
                return None
            return PlainTextResponse(
                f"host {host!r} refused: a console without a token answers only to loopback "
                "names (localhost, 127.0.0.1, [::1]); start it with a token to reach it otherwise",
                403,
            )
        if _same(request.query_params.get("token"), self.token):
            # Trade the token in the address bar for a cookie, and drop it from the address.
            kept = request.url.remove_query_params("token")
            target = kept.path + (f"?{kept.query}" if kept.query else "")
            response = RedirectResponse(target, 303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return response
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if (scheme.lower() == "bearer" and _same(value.strip(), self.token)) or _same(
            request.cookies.get(TOKEN_COOKIE), self.token
        ):
            return None
        return PlainTextResponse("token required: open the address printed by `cloudqueue ui`", 401)


def csrf_problem(request: Request, form_token: object) -> str | None:
    """Why this POST must be refused as possibly cross-site, or None when it may go on."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not isinstance(form_token, str) or cookie is None or not _same(form_token, cookie):
        return "CSRF token missing or wrong: reload the page and try again"
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return None
    parts = urlsplit(origin)
    expected = (request.url.scheme, request.headers.get("host", ""))
    if (parts.scheme, parts.netloc) != expected:
        return "cross-site request refused: its Origin is not this console"
    return None
