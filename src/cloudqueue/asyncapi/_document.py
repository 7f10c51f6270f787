"""Assembling the AsyncAPI 3.0.0 document of a worker app.

One channel per distinct URL (each handler's source and each declared publication);
a ``receive`` operation per handler and a ``send`` operation per publication; one
message per payload type in ``components/messages``, shared by every channel that
carries it, with the type's JSON Schema.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import InvalidArgument
from ._channels import Location, locate
from ._payloads import Payload, payload_for

__all__ = ["ASYNCAPI_VERSION", "DescribedApp", "build_document"]

ASYNCAPI_VERSION = "3.0.0"
_ID = re.compile(r"[^A-Za-z0-9_.\-]+")


class RouteLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def handler(self) -> Callable[..., Any]: ...
    @property
    def payload_type(self) -> object | None: ...


class PublicationLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def kind(self) -> object: ...
    @property
    def description(self) -> str | None: ...


class DescribedApp(Protocol):
    """What the document reads of a :class:`cloudqueue.worker.App`."""

    @property
    def routes(self) -> Sequence[RouteLike]: ...
    @property
    def publications(self) -> Sequence[PublicationLike]: ...


def build_document(
    app: DescribedApp, *, title: str, version: str = "1.0.0", description: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``app`` as JSON-ready data."""
    builder = _Builder()
    for route in app.routes:
        handler = route.handler
        builder.add_operation(
            "receive", route.url, payload_for(route.payload_type),
            name=getattr(handler, "__name__", None) or "handler",
            summary=_first_line(inspect.getdoc(handler)),
        )
    for publication in app.publications:
        builder.add_operation("send", publication.url, payload_for(publication.kind),
                              name="send", summary=publication.description)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {"asyncapi": ASYNCAPI_VERSION, "info": info}
    if builder.servers:
        document["servers"] = builder.servers
    document["channels"] = builder.channels
    document["operations"] = builder.operations
    components: dict[str, Any] = {"messages": builder.messages}
    if builder.schemas:
        components["schemas"] = builder.schemas
    document["components"] = components
    return document


class _Builder:
    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}
        self._channel_of_url: dict[str, str] = {}
        self._payload_of_message: dict[str, Payload] = {}

    def add_operation(
        self, action: str, url: str, payload: Payload, *, name: str, summary: str | None
    ) -> None:
        location = locate(url)
        channel_id = self._channel(location)
        message_id = self._message(payload)
        channel = self.channels[channel_id]
        channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
        }
        if summary:
            operation["summary"] = summary
        if action == "receive" and location.receive_bindings:
            operation["bindings"] = location.receive_bindings
        base = _ID.sub("-", f"{name}" if action == "receive" else f"send-{channel_id}")
        self.operations[_unique(base, self.operations)] = operation

    def _channel(self, location: Location) -> str:
        known = self._channel_of_url.get(location.shown_url)
        if known is not None:
            return known
        name = location.address + (f".{location.subscription}" if location.subscription else "")
        channel_id = _ID.sub("-", name).strip("-") or location.scheme
        if channel_id in self.channels:
            channel_id = _unique(f"{location.scheme}-{channel_id}", self.channels)
        self._channel_of_url[location.shown_url] = channel_id
        server_key = self._server(location)
        channel: dict[str, Any] = {
            "address": location.address,
            "servers": [{"$ref": f"#/servers/{server_key}"}],
            "messages": {},
        }
        if location.channel_bindings:
            channel["bindings"] = location.channel_bindings
        channel["x-cloudqueue"] = {"url": location.shown_url, **location.details}
        self.channels[channel_id] = channel
        return channel_id

    def _server(self, location: Location) -> str:
        server = location.server.to_asyncapi()
        key = location.server.key or location.scheme
        while key in self.servers and self.servers[key] != server:
            key = _unique(key, self.servers)
        self.servers[key] = server
        return key

    def _message(self, payload: Payload) -> str:
        message_id = _ID.sub("-", payload.name)
        known = self._payload_of_message.get(message_id)
        if known is not None and known != payload:
            raise InvalidArgument(
                f"two different message types are both named {payload.name!r}; "
                "rename one so that the document can tell them apart"
            )
        self._payload_of_message[message_id] = payload
        for name, schema in payload.definitions.items():
            if self.schemas.get(name, schema) != schema:
                raise InvalidArgument(
                    f"two different schemas are both named {name!r}; rename one of the types"
                )
            self.schemas[name] = schema
        message: dict[str, Any] = {"name": payload.name, "title": payload.name,
                                   "contentType": payload.content_type}
        if payload.description:
            message["description"] = payload.description
        if payload.schema is not None:
            message["payload"] = payload.schema
        self.messages[message_id] = message
        return message_id


def _unique(base: str, taken: dict[str, Any]) -> str:
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None
