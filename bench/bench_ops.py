"""Redrive throughput on the memory and SQLite providers vs their batched send.

Run: ``python bench/bench_ops.py [--messages N] [--repeats N]``. One process, the two
providers one after the other, SQLite on a file in a temporary directory. Bar (issue
14): ``cloudqueue.ops.redrive`` moves dead letters at >= 0.8x the rate the provider's
batched send takes the same messages (see ``_ops_workload``); both providers move dead
letters in place (``SubscriptionDriver.move_dead_letters``) for this run's options. The
network providers run the same workload from their own bench files.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile

from _ops_workload import BAR, compare

import cloudqueue

_names = itertools.count()


def memory_queue() -> str:
    url = f"memory://bench-ops-{next(_names)}"
    cloudqueue.declare(url, dead_letter_after=5)
    return url


def sqlite_queue(directory: str) -> str:
    url = f"sqlite:///{directory}/bench.db?queue=bench-ops-{next(_names)}"
    cloudqueue.declare(url, dead_letter_after=5)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios = {"memory": compare("memory", memory_queue, args.messages, args.repeats)}
    with tempfile.TemporaryDirectory() as directory:
        ratios["sqlite"] = compare(
            "sqlite", lambda: sqlite_queue(directory), args.messages, args.repeats
        )
    missed = [name for name, ratio in ratios.items() if ratio < BAR]
    print("bar met on every provider" if not missed else f"bar MISSED on {', '.join(missed)}")


if __name__ == "__main__":
    main()
