"""The depth-over-time chart: samples turned into SVG polyline points (pure, no I/O).

The x axis is the last ``history`` seconds ending now; the y axis runs from 0 to the
largest value of any series shown (at least 1, so an empty queue draws a flat line
at the bottom instead of dividing by zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._sampler import Sample

__all__ = ["HEIGHT", "SERIES", "WIDTH", "Chart", "chart"]

WIDTH = 600
HEIGHT = 160
#: Room at the left for the y-axis label.
_LEFT = 40
_TOP = 10
#: The series drawn, in the order of their legend.
SERIES = ("available", "dead_letters")


@dataclass(frozen=True, slots=True)
class Chart:
    samples: int
    top: int
    #: series name -> "x,y x,y ..." (empty when the series has no known value).
    lines: dict[str, str]
    span_minutes: int


def chart(samples: list[Sample], now: float, history: float) -> Chart:
    top = max([1, *(v for s in samples for v in _values(s) if v is not None)])
    start = now - history
    plot_width = WIDTH - _LEFT
    plot_height = HEIGHT - _TOP - 20
    lines = {}
    for name in SERIES:
        points = []
        for sample in samples:
            value = getattr(sample, name)
            if value is None:
                continue
            x = _LEFT + max(0.0, sample.t - start) / history * plot_width
            y = _TOP + plot_height - value / top * plot_height
            points.append(f"{x:.1f},{y:.1f}")
        lines[name] = " ".join(points)
    return Chart(len(samples), top, lines, max(1, round(history / 60)))


def _values(sample: Sample) -> tuple[int | None, ...]:
    return tuple(getattr(sample, name) for name in SERIES)
