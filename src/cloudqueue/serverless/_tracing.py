"""Trace context in the triggers' events: the carriers per trigger, X-Ray's
``AWSTraceHeader`` as W3C, and what each adapter says about its source on the spans.

Pure: no ``opentelemetry`` import (the process spans come from
:mod:`cloudqueue._telemetry._process`, loaded only when telemetry is on). Carrier
attributes are taken out of what the handler sees whether telemetry is on or off, as
the consumer does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..driver import PUBSUB_CARRIER, SERVICEBUS_CARRIER, W3C_CARRIER, Delivery

__all__ = [
    "PUBSUB_CARRIER", "SERVICEBUS_CARRIER", "SQS_CARRIER", "TraceSource",
    "traceparent_from_xray",
]

Headers = Mapping[str, str]

#: SQS: W3C names as String message attributes (as the contrib boto3sqs instrumentation).
SQS_CARRIER = W3C_CARRIER


_XRAY_ROOT = re.compile(r"1-([0-9a-f]{8})-([0-9a-f]{24})")
_XRAY_PARENT = re.compile(r"[0-9a-f]{16}")


def traceparent_from_xray(header: object) -> str | None:
    """The W3C ``traceparent`` of an X-Ray trace header
    (``Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1``):
    the trace id is the root's epoch and unique parts joined (X-Ray ids are 128-bit
    W3C ids written in two parts), the span id is ``Parent``, ``Sampled=1`` the
    sampled flag. None for a header without a parent or not in that format."""
    if not isinstance(header, str):
        return None
    fields: dict[str, str] = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        fields[key] = value.strip().lower()
    root = _XRAY_ROOT.fullmatch(fields.get("Root", ""))
    parent = fields.get("Parent", "")
    if root is None or _XRAY_PARENT.fullmatch(parent) is None:
        return None
    trace_id = root.group(1) + root.group(2)
    if trace_id == "0" * 32 or parent == "0" * 16:
        return None
    flags = "01" if fields.get("Sampled") == "1" else "00"
    return f"00-{trace_id}-{parent}-{flags}"


def _no_links(delivery: Delivery) -> Sequence[Headers]:
    return ()


@dataclass(frozen=True, slots=True)
class TraceSource:
    """What a trigger says on its process spans."""

    #: ``messaging.system``.
    system: str
    #: ``messaging.destination.name`` (and subscription name) of one delivery, when known.
    describe: Callable[[Delivery], dict[str, str]]
    #: More contexts to link to a delivery's span (Lambda: the ``AWSTraceHeader``).
    links_for: Callable[[Delivery], Sequence[Headers]] = field(default=_no_links)
