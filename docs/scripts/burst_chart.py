"""Draw docs/images/burst.png from a real run of the burst example.

::

    python docs/scripts/burst_chart.py [--orders 600] [--rate 100/s]

Runs ``examples/burst/burst.py``'s :func:`run` on an SQLite file in a temp folder
(a spike of orders in about a second, a worker limited to the rate) and plots the
queue depth it sampled from the provider, with the orders sent and processed so far.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "burst"))
import burst  # type: ignore[import-not-found]  # noqa: E402  (the example folder is no package)

OUT = ROOT / "docs" / "images" / "burst.png"


def main() -> int:
    parser = argparse.ArgumentParser(description="Chart a real run of the burst example.")
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--rate", default="100/s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        samples = burst.run(f"sqlite:///{Path(folder) / 'burst.db'}?queue=orders",
                            orders=args.orders, rate=args.rate)
    at = [sample.at for sample in samples]
    figure, axis = plt.subplots(figsize=(9, 4.5), dpi=110)
    axis.fill_between(at, [s.depth for s in samples], step="post", alpha=0.35, color="tab:orange",
                      label="queue depth (waiting + leased)")
    axis.step(at, [s.sent for s in samples], where="post", color="tab:blue", label="orders sent")
    axis.step(at, [s.processed for s in samples], where="post", color="tab:green",
              label=f"orders processed (worker: rate={args.rate!r})")
    peak = max(samples, key=lambda sample: sample.depth)
    axis.annotate(f"peak {peak.depth}", (peak.at, peak.depth), textcoords="offset points", xytext=(10, 8))
    axis.set_xlabel("seconds since the spike began")
    axis.set_ylabel("messages")
    axis.set_title(f"{args.orders} orders in about 1 s, drained at {args.rate}: the queue holds the peak")
    axis.set_xlim(0, at[-1])
    axis.set_ylim(0, args.orders * 1.08)
    axis.grid(alpha=0.3)
    axis.legend(loc="center right")
    figure.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUT)
    print(f"wrote {OUT.relative_to(ROOT)}: peak depth {peak.depth}, drained in {at[-1]:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
