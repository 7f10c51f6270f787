"""The screen of ``cloudqueue top``: a pure function of the histories (imports rich)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..driver import QueueStats
from ._top_history import History, rates, sparkline
from ._views import UNKNOWN, count, format_age

__all__ = ["SPARK_WIDTH", "render", "spark_bucket"]

#: Characters of the depth sparkline.
SPARK_WIDTH = 24
#: Seconds of depth history the sparkline covers at the default refresh (longer when
#: refreshing more slowly: one character is never less than one refresh).
SPARK_SPAN = 120.0


def spark_bucket(interval: float) -> float:
    return max(interval, SPARK_SPAN / SPARK_WIDTH)


def render(histories: Sequence[History], *, now: float, interval: float, clock: str) -> RenderableType:
    """The whole screen for the readings so far; ``now`` is on the samples' monotonic
    clock, ``clock`` the wall-clock time to show."""
    bucket = spark_bucket(interval)
    table = Table(
        title=f"cloudqueue top · every {interval:g} s · {clock} · Ctrl-C quits",
        title_justify="left",
        header_style="bold",
        expand=False,
    )
    # URLs fold only past 48 characters: narrower, the numbers' columns give way first.
    longest = max((len(history.label) for history in histories), default=3)
    table.add_column("URL", overflow="fold", min_width=min(48, longest), max_width=48)
    for name in ("AVAILABLE", "IN FLIGHT", "DELAYED", "DEAD", "OLDEST", "SENT/s", "RECV/s", "DEPTH Δ/s"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column(f"DEPTH, LAST {_span_text(bucket * SPARK_WIDTH)}", no_wrap=True)
    approximate = False
    uncounted = False
    for history in histories:
        stats = history.latest_stats
        latest = history.latest
        failed = latest is not None and latest.error is not None
        label = Text(history.label)
        if failed:
            assert latest is not None and latest.error is not None
            label.append("\n" + latest.error, style="red")
        approximate |= stats is not None and not stats.exact
        uncounted |= stats is not None and stats.total_sent is None
        figures = rates(history.samples)
        spark, top = sparkline(history.samples, now, width=SPARK_WIDTH, bucket=bucket)
        table.add_row(
            label,
            *_counts(stats),
            _rate(figures.sent),
            _rate(figures.received),
            _rate(figures.depth_change, signed=True),
            Text(spark, style="cyan") + Text(f" {top}" if stats is not None else ""),
            # A failed reading leaves the last good numbers on screen, dimmed as stale.
            style="dim" if failed else None,
        )
    notes = []
    if approximate:
        notes.append("~ approximate counts (the provider's own estimates)")
    if uncounted:
        notes.append("SENT/s, RECV/s -: the provider does not count sends and receives; see DEPTH Δ/s")
    return Group(table, *(Text(note, style="dim") for note in notes))


def _counts(stats: QueueStats | None) -> list[Text]:
    if stats is None:
        return [Text(UNKNOWN)] * 5
    def shown(value: int | None) -> str:
        return count(value) if stats.exact or value is None else f"~{value}"

    dead = stats.dead_letters
    return [
        Text(shown(stats.available), style="bold"),
        Text(shown(stats.in_flight)),
        Text(shown(stats.delayed)),
        Text(shown(dead), style="bold red" if dead else ""),
        Text(format_age(stats.oldest_age)),
    ]


def _rate(value: float | None, *, signed: bool = False) -> Text:
    if value is None:
        return Text(UNKNOWN)
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    style = "" if not signed or abs(value) < 0.05 else "yellow" if value > 0 else "green"
    return Text(text, style=style)


def _span_text(seconds: float) -> str:
    return f"{seconds / 60:g} MIN" if seconds >= 60 else f"{seconds:g} S"
