"""An optional bearer-token check on every RPC, for tests of user-supplied credentials.

Google's service authenticates each call by the OAuth token the client library sends as
``authorization: Bearer <token>`` metadata. The local server, when given a token, accepts only
calls that carry exactly that one, so a test can prove that a credential object it handed to
cloudqueue is the one whose token went out. The token itself never appears in what the server
answers or logs.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["BearerTokenCheck"]

_PREFIX = "Bearer "


class BearerTokenCheck(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses every call without ``authorization: Bearer <token>`` with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("bearer_token must be a non-empty string")
        self._expected = (_PREFIX + token).encode()

    def __repr__(self) -> str:
        return "BearerTokenCheck(token=<hidden>)"

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if self._accepts(handler_call_details.invocation_metadata or ()):
            return continuation(handler_call_details)
        return _REFUSE

    def _accepts(self, metadata: Any) -> bool:
        for key, value in metadata:
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else bytes(value)
                # Constant time, as a real server would compare secrets.
                return hmac.compare_digest(given, self._expected)
        return False


def _refuse(requests: Any, context: grpc.ServicerContext) -> Any:
    # Answers before reading any request, so one stream-stream handler serves unary and
    # streaming calls alike.
    context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or wrong bearer token: this local Pub/Sub server was started with "
        "bearer_token= and accepts only calls carrying that token",
    )
    raise AssertionError("context.abort returns only by raising")  # pragma: no cover


_REFUSE = grpc.stream_stream_rpc_method_handler(_refuse)
