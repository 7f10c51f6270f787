"""Peak shaving: a spike of orders lands in the queue in about a second while a worker
limited to a steady rate drains it. The queue depth jumps with the spike and falls at
the worker's pace: the queue, not the downstream system, holds the peak.

::

    python examples/burst/burst.py                     # SQLite file in a temp folder
    python examples/burst/burst.py 'sqlite:///shop.db?queue=orders' --orders 1000 --rate 200/s

The depth is read from the provider (``cloudqueue.ops.stats``: waiting plus leased)
ten times a second and shown live (with ``rich`` when it is installed, plain lines
otherwise). ``docs/scripts/burst_chart.py`` runs :func:`run` and draws the chart in
docs/worker.md from the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cloudqueue
from cloudqueue.worker import App

#: Orders per send call while spiking (SQS's largest batch; any provider takes it).
BATCH = 10


@dataclass(frozen=True)
class Sample:
    """The state of the run at one moment."""

    #: Seconds since the spike began.
    at: float
    #: Messages in the queue: waiting plus leased (received, not yet acked).
    depth: int
    #: Orders sent so far.
    sent: int
    #: Orders the worker's handler finished so far.
    processed: int


def ship(message: cloudqueue.ReceivedMessage) -> None:
    """The handler: stands for a call to a downstream system that bears only so much."""
    time.sleep(0.002)


def spike(url: str, orders: int, seconds: float, sent: list[int]) -> None:
    """Send ``orders`` in batches spread evenly over about ``seconds``."""
    started = time.monotonic()
    with cloudqueue.open_producer(url) as producer:
        for first in range(0, orders, BATCH):
            numbers = range(first, min(orders, first + BATCH))
            batch = [cloudqueue.Message(f'{{"order": {n}}}') for n in numbers]
            producer.send_batch(batch)
            sent[0] += len(batch)
            ahead = started + seconds * sent[0] / orders - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def depth_of(url: str) -> int:
    stats = cloudqueue.ops.stats(url)
    return (stats.available or 0) + (stats.in_flight or 0) + (stats.delayed or 0)


def run(
    url: str, *, orders: int = 600, rate: str = "100/s", spike_seconds: float = 1.0,
    every: float = 0.1, on_sample: Callable[[Sample], None] | None = None,
) -> list[Sample]:
    """Spike ``orders`` into ``url`` while a worker drains it at ``rate``; return the
    samples taken every ``every`` seconds until the queue is empty again."""
    cloudqueue.declare(url, lease=30)
    app = App(concurrency=8)
    app.add_handler(url, ship, rate=rate)
    sent = [0]
    samples: list[Sample] = []

    async def main() -> None:
        serving = asyncio.create_task(app.serve(grace=5.0))
        started = time.monotonic()
        sender = threading.Thread(target=spike, args=(url, orders, spike_seconds, sent), name="spike")
        sender.start()
        try:
            while True:
                depth = await asyncio.to_thread(depth_of, url)
                sample = Sample(time.monotonic() - started, depth, sent[0], app.counters()["processed"])
                samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)
                if sample.processed >= orders and depth == 0:
                    break
                if serving.done():
                    serving.result()  # the worker failed: raise its error
                await asyncio.sleep(every)
        finally:
            app.stop()
            await serving
            sender.join()

    asyncio.run(main())
    return samples


def live_view(orders: int, rate: str) -> tuple[Callable[[Sample], None], Callable[[], None]]:
    """A callback drawing each sample in the terminal, and one to call at the end."""
    try:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text
    except ImportError:
        def show_plain(sample: Sample) -> None:
            bar = "#" * round(40 * sample.depth / orders)
            print(f"{sample.at:5.1f}s depth {sample.depth:5d} {bar:<40} sent {sample.sent} "
                  f"processed {sample.processed}", flush=True)

        return show_plain, lambda: None

    live = Live(console=Console(), refresh_per_second=10)
    live.start()

    def show_rich(sample: Sample) -> None:
        filled = round(40 * sample.depth / orders)
        text = Text(f"{sample.at:5.1f}s  queue depth ")
        text.append("█" * filled, style="bold yellow")
        text.append("·" * (40 - filled), style="dim")
        text.append(f" {sample.depth:5d}\n       sent {sample.sent:5d}   processed {sample.processed:5d}"
                    f"   worker limited to {rate}")
        live.update(text)

    def finish() -> None:
        live.stop()
        print()

    return show_rich, finish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="queue URL (default: an SQLite file in a temp folder)")
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--rate", default="100/s")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'burst.db'}?queue=orders"
        show, done = live_view(args.orders, args.rate)
        try:
            samples = run(url, orders=args.orders, rate=args.rate, on_sample=show)
        finally:
            done()
    peak = max(samples, key=lambda sample: sample.depth)
    print(f"peak depth {peak.depth} at {peak.at:.1f}s; drained {args.orders} orders in {samples[-1].at:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
