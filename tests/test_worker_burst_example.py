"""The burst example (examples/burst) on SQLite: the spike lands in the queue, the
rate-limited worker drains it at its pace, and the queue ends empty."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "burst"))
import burst  # type: ignore[import-not-found]  # (the example folder is no package)


def test_the_queue_holds_the_spike_while_the_worker_drains_it_at_its_rate(tmp_path: Path) -> None:
    orders, per_second = 120, 40
    shown: list[burst.Sample] = []
    samples = burst.run(f"sqlite:///{tmp_path}/burst.db?queue=orders", orders=orders,
                        rate=f"{per_second}/s", spike_seconds=0.5, on_sample=shown.append)
    assert shown == samples
    assert samples[-1].processed == orders and samples[-1].depth == 0
    # The spike outran the worker: the queue held most of it.
    at_all_sent = next(index for index, sample in enumerate(samples) if sample.sent == orders)
    all_sent = samples[at_all_sent]
    assert all_sent.processed < orders / 2
    assert max(sample.depth for sample in samples) >= orders / 2
    # Once everything was sent the depth only fell, at the worker's pace: starts after
    # that moment are at least those not finished then, less the 8 lanes' in-flight
    # ones, and a bucket allows burst + 8 lanes' tokens + rate x time of them.
    falling = samples[at_all_sent + 1:]
    assert all(b.depth <= a.depth for a, b in itertools.pairwise(falling))
    burst_size, lanes = 4, 8  # the default burst for 40/s: a tenth of a second's worth
    left = orders - all_sent.processed - lanes
    assert samples[-1].at - all_sent.at >= (left - burst_size - lanes) / per_second
