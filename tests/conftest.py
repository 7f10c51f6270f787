"""Fixtures shared by the core's test modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cloudqueue.testing.telemetry import Captured


@pytest.fixture
def otel_capture() -> Captured:
    """The process's in-memory span exporter and metric reader, spans cleared
    (imported here, not at the top: most tests never load the SDK)."""
    from cloudqueue.testing.telemetry import capture

    captured = capture()
    captured.clear()
    return captured
