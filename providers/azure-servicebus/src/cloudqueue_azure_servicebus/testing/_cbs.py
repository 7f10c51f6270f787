"""The ``$cbs`` node: claims-based security put-token.

Without a :class:`TokenCheck` every token is accepted; with one (a broker started with
``require_valid_tokens=True``) a token it refuses is answered 401, which the SDK raises as
an authentication error.
"""

from __future__ import annotations

from typing import Any

from proton import Message, int32

from ._auth import TokenCheck

CBS_NODE = "$cbs"


def handle_cbs(request: Message, tokens: TokenCheck | None = None) -> Message:
    props: dict[Any, Any] = request.properties or {}
    operation = props.get("operation")
    if operation != "put-token":
        status, description = 400, f"Unsupported $cbs operation {operation!r}"
    else:
        problem = None if tokens is None else tokens.problem(_text(request.body))
        if problem is None:
            status, description = 200, "OK"
        else:
            status, description = 401, f"Unauthorized: {problem}."
    return Message(
        correlation_id=request.id,
        properties={"status-code": int32(status), "status-description": description},
    )


def _text(body: object) -> str:
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body).decode("utf-8", "replace")
    return body if isinstance(body, str) else ""
