"""Pub/Sub push: a handler annotated with the CloudEvent type gets Eventarc's own event.

An Eventarc trigger delivers a Pub/Sub message as the CloudEvent
``google.cloud.pubsub.topic.v1.messagePublished`` (HTTP binary or structured mode), whose
data is the push envelope. A CloudEvent-typed handler receives that event, as
functions-framework's ``cloud_event`` handlers do; a plain push request (no CloudEvent
around it) gets the CloudEvent its message carries, decoded like anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from ..errors import DecodeError
from ..worker._typed import HandlerBinding

__all__ = ["event_from_request", "handler_of_events"]


def event_from_request(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """The CloudEvent of an HTTP request (``headers`` with lower-case names), either mode."""
    try:
        return http.from_http(http.HTTPMessage(dict(headers), body), JSONFormat())
    except (BaseCloudEventException, ValueError, TypeError) as error:
        raise DecodeError(f"the request's CloudEvent is invalid: {error}") from None


def handler_of_events(
    handler: Callable[..., Any],
    binding: HandlerBinding,
    is_async: bool,
    request_event: Callable[[Any], BaseCloudEvent | None],
) -> Callable[[Any], Any]:
    """``handler`` as a function of the message: called with the request's event when
    ``request_event(message)`` finds one, else with the event the message carries."""
    codec, kind = binding.codec, binding.payload_type
    assert codec is not None  # a CloudEvent-typed handler has the CloudEvent codec

    def event_of(message: Any) -> object:
        event = request_event(message)
        if event is not None:
            return event
        return codec.decode(message.body, message.attributes, kind)  # type: ignore[arg-type]

    def arguments(message: Any) -> tuple[object, ...]:
        return (event_of(message), message) if binding.passes_message else (event_of(message),)

    if is_async:
        async def events_async(message: Any) -> object:
            return await handler(*arguments(message))
        bound: Callable[[Any], Any] = events_async
    else:
        def events(message: Any) -> object:
            return handler(*arguments(message))
        bound = events
    # Logs and spans name the user's handler. Not functools.update_wrapper: its
    # __wrapped__ and annotations would make the binding decode the payload again.
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(bound, name, getattr(handler, name, getattr(bound, name)))
    return bound
