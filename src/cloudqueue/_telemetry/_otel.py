"""The OpenTelemetry implementation of cloudqueue's telemetry (filled in below)."""

from __future__ import annotations

__all__ = ["Telemetry"]


class Telemetry:
    """What the engine and the runtimes call when telemetry is on."""
