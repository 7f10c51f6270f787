"""The ``$cbs`` node: claims-based security put-token.

Tokens are accepted without checking their signature: this is a local test broker.
"""

from __future__ import annotations

from typing import Any

from proton import Message, int32

CBS_NODE = "$cbs"


def handle_cbs(request: Message) -> Message:
    props: dict[Any, Any] = request.properties or {}
    operation = props.get("operation")
    if operation == "put-token":
        status, description = 200, "OK"
    else:
        status, description = 400, f"Unsupported $cbs operation {operation!r}"
    return Message(
        correlation_id=request.id,
        properties={"status-code": int32(status), "status-description": description},
    )
