"""Trace context and telemetry attributes on Service Bus, as azure-servicebus writes them.

The SDK's own tracing (azure-core with ``settings.tracing_implementation =
"opentelemetry"``) writes the W3C ``traceparent`` twice, as the application properties
``Diagnostic-Id`` and ``traceparent``, and ``tracestate`` when there is one; on receipt
it reads ``traceparent``, else ``Diagnostic-Id``. Declaring the same carrier lets
cloudqueue and the SDK (and the other Azure SDKs) continue each other's traces.
"""

from __future__ import annotations

from cloudqueue.driver import SERVICEBUS_CARRIER

from ._names import Target

__all__ = ["CARRIER", "property_name", "telemetry_attributes"]

#: The carrier the SDK uses (defined once in the core, which the serverless adapters share).
CARRIER = SERVICEBUS_CARRIER

# The SDK adds its own context with dict.setdefault under *bytes* keys when its tracing is
# on. Written under str keys, ours would not stop it, and the message would carry each name
# twice (both encode as AMQP strings). Under the same bytes keys, ours is kept.
_AS_BYTES: dict[str, str | bytes] = {name: name.encode() for name in CARRIER.attribute_names}


def property_name(name: str) -> str | bytes:
    """The application-property key ``name`` is written under."""
    return _AS_BYTES.get(name, name)


def telemetry_attributes(fully_qualified_namespace: str, target: Target) -> dict[str, str | int]:
    """``messaging.system``, ``server.address`` (+ ``server.port`` when the namespace names
    one: a local broker) and, for a consumer of a topic, the subscription's name."""
    host, _, port = fully_qualified_namespace.rpartition(":")
    attributes: dict[str, str | int] = {"messaging.system": "servicebus"}
    if host and port.isdigit():
        attributes["server.address"], attributes["server.port"] = host, int(port)
    else:
        attributes["server.address"] = fully_qualified_namespace
    if target.subscription:
        attributes["messaging.destination.subscription.name"] = target.subscription
    return attributes
