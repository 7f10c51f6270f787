"""The SQLite provider through the public API vs persist-queue's SQLiteAckQueue.

Run: ``python bench/bench_sqlite.py [--messages N] [--baseline N]``. Everything
runs in one process, one after the other, on files in one temporary
directory, so the ratios compare like with like. Bars (issue 20, raised from
issue 3's 50x and 3x): batched send/receive/ack (100 per batch) >= 100x
SQLiteAckQueue doing put/get/ack one at a time; our one-at-a-time >= 5x the same
baseline.

Both sides run with their defaults: ours is WAL with synchronous=NORMAL (a
committed send survives a process crash; fsyncs only at checkpoints);
persist-queue is WAL too, commits every put, get and ack (auto_commit=True)
with sqlite3's default synchronous=FULL (an fsync per commit). Its
``multithreading`` is left at its default: no measurable difference either way.
Each side's figure is its best of ``--repeats`` runs; the spread (worst run) is
printed too, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from collections.abc import Callable

import _report
import persistqueue
from _workloads import BODY, batched_round_trips, rates, single_round_trips

_names = itertools.count()


def fresh_url(directory: str) -> str:
    return f"sqlite:///{directory}/bench.db?queue=bench-{next(_names)}"


def cq_batched(directory: str) -> Callable[[int], None]:
    return lambda count: batched_round_trips(fresh_url(directory), count)


def cq_single(directory: str) -> Callable[[int], None]:
    # max_in_flight=1: no prefetch, so each receive is its own lease transaction.
    return lambda count: single_round_trips(
        fresh_url(directory), count, max_in_flight=1, settle_delay=0
    )


def persist_queue_single(directory: str) -> Callable[[int], None]:
    def run(count: int) -> None:
        path = os.path.join(directory, f"pq-{next(_names)}")
        queue = persistqueue.SQLiteAckQueue(path)
        for _ in range(count):
            queue.put(BODY)
            item = queue.get(block=False)
            queue.ack(item)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per batched run")
    parser.add_argument("--single", type=int, default=3_000, help="messages per one-at-a-time run")
    parser.add_argument("--baseline", type=int, default=1_000, help="messages per persist-queue run")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each, best one counted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
        found = rates({
            "baseline": (args.baseline, persist_queue_single(directory)),
            "batched": (args.messages, cq_batched(directory)),
            "single": (args.single, cq_single(directory)),
        }, args.repeats)
    baseline = max(found["baseline"])

    def line(label: str, name: str, bar: float | None = None) -> None:
        runs = found[name]
        best = max(runs)
        ratio = f"  = {best / baseline:6.1f}x  (bar {bar:g}x)" if bar else ""
        print(f"{label:56}{best:10,.0f} msg/s (worst run {min(runs):8,.0f}){ratio}")
        if bar:
            _report.bar(f"sqlite {name} vs persist-queue", best / baseline, at_least=bar)

    line("persist-queue SQLiteAckQueue, put/get/ack one at a time:", "baseline")
    line("cloudqueue sqlite, batched (100 per batch):", "batched", 100.0)
    line("cloudqueue sqlite, one at a time:", "single", 5.0)
    workload = "send+receive+ack"
    _report.figure("sqlite", workload, "persist-queue SQLiteAckQueue (one at a time)", baseline,
                   kind="baseline")
    _report.figure("sqlite", workload, "cloudqueue, batched (100)", max(found["batched"]))
    _report.figure("sqlite", workload, "cloudqueue, one at a time", max(found["single"]))


if __name__ == "__main__":
    main()
