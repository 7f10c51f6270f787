"""Serving the console with uvicorn, saying so once the socket listens."""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette

__all__ = ["serve"]


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: str) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # printed after the bind, so a script can wait for this line
            print(self.ready, flush=True)


def serve(app: Starlette, host: str, port: int, ready: str) -> bool:
    """Serve ``app`` until interrupted; print ``ready`` once listening. False if it never started."""
    server = _AnnouncingServer(uvicorn.Config(app, host=host, port=port, log_level="warning"), ready)
    server.run()
    return server.started
