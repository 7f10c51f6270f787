"""OpenTelemetry for cloudqueue: the single switch and what the engine calls.

Conventions followed: OpenTelemetry semantic conventions for messaging, v1.37
(spans ``send``/``create``/``receive``/``settle``/``process``; metrics
``messaging.client.*`` and ``messaging.process.duration``).

Telemetry is on when ``opentelemetry`` (the API, ``pip install cloudqueue[otel]``)
can be imported and the environment variable ``CLOUDQUEUE_TELEMETRY`` is not
``off``. That is decided once, lazily, by :func:`active`: when off, every hook
the engine holds is ``None`` and ``opentelemetry`` is never imported. Only
:mod:`._otel` (and modules only it imports) import ``opentelemetry``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._otel import Telemetry

__all__ = ["ENVIRONMENT_SWITCH", "active"]

#: Set to ``off`` to turn cloudqueue's telemetry off even where OpenTelemetry is installed.
ENVIRONMENT_SWITCH = "CLOUDQUEUE_TELEMETRY"

_UNDECIDED: Any = object()
_state: Telemetry | None = _UNDECIDED


def active() -> Telemetry | None:
    """The process's :class:`Telemetry`, or None when telemetry is off."""
    global _state
    if _state is _UNDECIDED:
        _state = _decide()
    return _state


def _decide() -> Telemetry | None:
    if os.environ.get(ENVIRONMENT_SWITCH, "").strip().lower() == "off":
        return None
    try:
        if importlib.util.find_spec("opentelemetry.trace") is None:
            return None
    except (ImportError, ValueError):  # a blocked or broken installation counts as absent
        return None
    try:
        from ._otel import Telemetry
    except ImportError:  # an API too old or half installed: run without, as when absent
        return None
    return Telemetry()

