"""Trace context and telemetry attributes on Pub/Sub, as google-cloud-pubsub writes them.

With ``PublisherOptions(enable_open_telemetry_tracing=True)`` the official client injects
W3C trace context as the message attributes ``googclient_traceparent`` and
``googclient_tracestate`` (the header names behind a ``googclient_`` prefix), and its
subscriber reads the same names. Declaring that carrier lets cloudqueue and the client
continue each other's traces. Users cannot write these names themselves: ``goog`` is a
reserved attribute prefix; only the portable layer writes them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cloudqueue.driver import PUBSUB_CARRIER

from ._names import Names

__all__ = ["CARRIER", "telemetry_attributes"]

#: The carrier the client uses (defined once in the core, which the serverless adapters share).
CARRIER = PUBSUB_CARRIER

_GOOGLE_ENDPOINT = ("pubsub.googleapis.com", 443)


def telemetry_attributes(endpoint: str | None, names: Names) -> dict[str, str | int]:
    """``messaging.system``, ``server.address``/``server.port`` (Google's endpoint, or
    the one ``PUBSUB_EMULATOR_HOST`` or the user's client options name) and, for a consumer,
    the subscription id."""
    host, port = _GOOGLE_ENDPOINT
    if endpoint:
        # hostname and port only: never a user:password@ the variable may hold.
        parts = urlsplit("//" + endpoint)
        host, port = parts.hostname or endpoint, parts.port or port
    attributes: dict[str, str | int] = {
        "messaging.system": "gcp_pubsub",
        "server.address": host,
        "server.port": port,
    }
    if names.subscription_id is not None:
        attributes["messaging.destination.subscription.name"] = names.subscription_id
    return attributes
