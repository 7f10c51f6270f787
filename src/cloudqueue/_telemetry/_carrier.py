"""Trace context between W3C headers and message attributes, per a driver's
:class:`~cloudqueue.driver.TraceCarrier`. Pure: no OpenTelemetry import, so the
engine uses it whether telemetry is on or off (stripping is unconditional)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..driver import TraceCarrier

__all__ = ["carrier_names", "extract", "inject"]


@lru_cache(maxsize=64)
def carrier_names(carrier: TraceCarrier) -> frozenset[str]:
    """``carrier.attribute_names``, computed once per carrier (it is read per message)."""
    return carrier.attribute_names


def inject(carrier: TraceCarrier, headers: Mapping[str, str], attributes: dict[str, str]) -> None:
    """Write the W3C ``headers`` into ``attributes`` under the carrier's names."""
    for header, name in carrier.inject:
        value = headers.get(header)
        if value is not None:
            attributes[name] = value


def extract(
    carrier: TraceCarrier, attributes: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str] | None]:
    """Split received ``attributes`` into the user's own and the W3C headers they
    carried (None when none). The carrier's names never reach the user."""
    names = carrier_names(carrier)
    if names.isdisjoint(attributes):
        return dict(attributes), None
    headers: dict[str, str] = {}
    for header, name in carrier.extract:
        if header not in headers and name in attributes:
            headers[header] = attributes[name]
    user = {name: value for name, value in attributes.items() if name not in names}
    return user, headers or None
