"""Figures a benchmark hands to ``bench/run_all.py``, besides what it prints.

A benchmark calls :func:`figure` for each throughput it measured and :func:`bar` for each
target it checks. Run by hand, both do nothing (the printed report is the interface);
run by ``run_all.py``, which names a file in ``$CLOUDQUEUE_BENCH_REPORT``, each call appends
one JSON object on a line of its own there. One line per call, flushed at once, so a
benchmark that fails half-way still leaves the figures it had measured.

Kinds of figure, for the table and chart of docs/benchmarks.md:

- ``cloudqueue``: the library, through its public API;
- ``baseline``: what the library is compared with on that workload (a peer library or a
  careful hand-written SDK loop); one per workload, the ratio is taken against it;
- ``reference``: shown for scale, no ratio (a bare deque, a naive one-call-per-message loop).
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

__all__ = ["KINDS", "REPORT_ENV", "Kind", "bar", "figure"]

REPORT_ENV = "CLOUDQUEUE_BENCH_REPORT"
KINDS = ("cloudqueue", "baseline", "reference")
Kind = Literal["cloudqueue", "baseline", "reference"]


def figure(
    provider: str, workload: str, variant: str, value: float, *,
    kind: Kind = "cloudqueue", unit: str = "msg/s",
) -> None:
    """Record ``value`` (higher is better) of ``variant`` on ``provider``'s ``workload``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    _write({"type": "figure", "provider": provider, "workload": workload, "variant": variant,
            "kind": kind, "value": float(value), "unit": unit})


def bar(label: str, value: float, *, at_least: float | None = None, at_most: float | None = None) -> None:
    """Record a target the benchmark checks: ``value`` must be >= ``at_least`` (or <= ``at_most``)."""
    if (at_least is None) == (at_most is None):
        raise ValueError(f"bar {label!r}: give exactly one of at_least and at_most")
    _write({"type": "bar", "label": label, "value": float(value),
            "at_least": at_least, "at_most": at_most})


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
