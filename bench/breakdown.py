"""Where a round trip's time goes: the provider's driver alone, the public API, the baseline.

Run: ``python bench/breakdown.py [--provider memory|sqlite ...] [--rounds N] [--profile]``.

bench_memory.py and bench_sqlite.py compare the public API with a peer (kombu's memory
transport; persist-queue's SQLiteAckQueue) and set bars on the ratio. When a bar is
missed, the first question is whether the time goes to the provider's own work or to
the portable layer above it. This runs the same loops three ways, taking turns in one
process:

- the baseline, as in that provider's benchmark;
- the public API (``bench/_workloads.py``: the loops the benchmarks time);
- the driver alone: the provider's ``send_batch``, ``receive_batch`` and ``ack``, called
  the way the portable layer calls them in that loop (acks in batches of 100 where the
  consumer's background flush batches them; one by one where the benchmark's consumer
  sends each at once, as the SQLite one-at-a-time loop does);
- for SQLite, its statements alone: the provider's own schema, pragmas and SQL (insert,
  choose and lease, delete), one transaction each as the driver commits them, and no
  Python around them beyond the sqlite3 calls: the floor of storing one row per message
  with the documented durability (a send, a lease and an ack are committed when their
  call returns),

and prints microseconds per message: the portable layer's share is the API minus the
driver, and the bar's budget for it is (baseline / bar) minus the driver. A driver that
alone exceeds the bar's whole budget cannot meet it whatever the portable layer does.
Wall-clock time, best of ``--rounds`` (persist-queue's cost is mostly waiting on fsync).
``--profile`` adds cProfile's view of each API loop, by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import pstats
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from _workloads import BODY, batched_round_trips, single_round_trips

import cloudqueue
from cloudqueue._url import parse_url
from cloudqueue.driver import Provider
from cloudqueue.providers._sqlite import schema
from cloudqueue.providers.memory import MemoryProvider
from cloudqueue.providers.sqlite import SqliteProvider

_names = itertools.count()
Loop = Callable[[int], None]


@dataclass
class Case:
    provider: str
    workload: str
    bar: float
    messages: int
    baseline: tuple[str, Loop]
    api: Loop
    driver: Loop
    statements: Loop | None = None


def driver_loop(provider: Provider, url: str, batch: int, ack_every: int) -> Loop:
    """send_batch of ``batch``, receive them, ack every ``ack_every`` tokens."""
    def run(count: int) -> None:
        parsed = parse_url(url.format(next(_names)))
        topic, subscription = provider.open_topic(parsed), provider.open_subscription(parsed)
        tokens: list[object] = []
        for _ in range(count // batch):
            topic.send_batch([cloudqueue.Message(BODY) for _ in range(batch)])
            received = 0
            while received < batch:
                for delivery in subscription.receive_batch(batch - received, 1.0):
                    tokens.append(delivery.token)
                    received += 1
                    if len(tokens) == ack_every:
                        subscription.ack(tokens)
                        tokens = []
        if tokens:
            subscription.ack(tokens)
        topic.close()
        subscription.close()
    return run


def sqlite_statements_loop(directory: str, batch: int) -> Loop:
    """The SQLite provider's statements for ``batch`` messages at a time, without it."""
    def run(count: int) -> None:
        connection = sqlite3.connect(os.path.join(directory, f"floor-{next(_names)}.db"),
                                     isolation_level=None, cached_statements=128)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = normal")
        connection.executescript(schema.SCHEMA)
        cursor = connection.cursor()
        sub = 1
        ids = itertools.count()
        for lease in range(1, count // batch + 1):
            now = time.time()
            rows = [(sub, str(next(ids)), BODY, None, None, now, now, None) for _ in range(batch)]
            cursor.execute("BEGIN IMMEDIATE")
            for size in schema.INSERT_CHUNKS:  # as the provider cuts a batch
                while len(rows) >= size:
                    chunk, rows = rows[:size], rows[size:]
                    cursor.execute(schema.INSERT_MESSAGES[size], [v for row in chunk for v in row])
            cursor.execute("COMMIT")
            cursor.execute("BEGIN IMMEDIATE")
            chosen = cursor.execute(schema.CHOOSE, {"sub": sub, "now": time.time() + 1,
                                                    "limit": batch}).fetchall()
            seqs = [row[0] for row in chosen]
            cursor.execute(schema.TAKE, (lease, now + 30.0, json.dumps(seqs)))
            cursor.execute("COMMIT")
            if batch == 1:
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(schema.ACK, (seqs[0], lease))
            else:
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(schema.ACK_LEASE, (lease, json.dumps(seqs)))
            cursor.execute("COMMIT")
        connection.close()
    return run


def kombu_loop(batch: int) -> Loop:
    def run(count: int) -> None:
        from kombu import Connection

        with Connection("memory://") as connection:
            queue = connection.SimpleQueue(f"breakdown-{next(_names)}")
            for _ in range(count // batch):
                for _ in range(batch):
                    queue.put(BODY)
                for _ in range(batch):
                    queue.get(block=True, timeout=1).ack()
            queue.close()
    return run


def persist_queue_loop(directory: str) -> Loop:
    def run(count: int) -> None:
        import persistqueue

        queue = persistqueue.SQLiteAckQueue(os.path.join(directory, f"pq-{next(_names)}"))
        for _ in range(count):
            queue.put(BODY)
            queue.ack(queue.get(block=False))
    return run


def cases(chosen: list[str], directory: str) -> list[Case]:
    found: list[Case] = []
    if "memory" in chosen:
        memory = MemoryProvider()
        memory_url = "memory://breakdown-{}"
        found += [
            Case("memory", "one at a time", 2.0, 20_000, ("kombu", kombu_loop(1)),
                 lambda n: single_round_trips(memory_url.format(next(_names)), n),
                 driver_loop(memory, memory_url, 1, 100)),
            Case("memory", "batched by 100", 10.0, 20_000, ("kombu", kombu_loop(100)),
                 lambda n: batched_round_trips(memory_url.format(next(_names)), n),
                 driver_loop(memory, memory_url, 100, 100)),
        ]
    if "sqlite" in chosen:
        sqlite = SqliteProvider()
        sqlite_url = f"sqlite:///{directory}/breakdown.db?queue=q{{}}"
        pq = ("persist-queue", persist_queue_loop(directory))
        found += [
            Case("sqlite", "one at a time", 5.0, 3_000, pq,
                 lambda n: single_round_trips(sqlite_url.format(next(_names)), n,
                                              max_in_flight=1, settle_delay=0),
                 driver_loop(sqlite, sqlite_url, 1, 1), sqlite_statements_loop(directory, 1)),
            Case("sqlite", "batched by 100", 100.0, 20_000, pq,
                 lambda n: batched_round_trips(sqlite_url.format(next(_names)), n),
                 driver_loop(sqlite, sqlite_url, 100, 100), sqlite_statements_loop(directory, 100)),
        ]
    return found


def us_per_message(loop: Loop, count: int) -> float:
    started = time.perf_counter()
    loop(count)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", nargs="+", choices=["memory", "sqlite"],
                        default=["memory", "sqlite"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-breakdown-") as directory:
        for case in cases(options.provider, directory):
            report(case, options.rounds, options.profile)


def report(case: Case, rounds: int, profile: bool) -> None:
    name, baseline = case.baseline
    loops = {"baseline": baseline, "api": case.api, "driver": case.driver}
    if case.statements is not None:
        loops["statements"] = case.statements
    # persist-queue does one at a time whatever the workload, slowly: fewer of them.
    counts = dict.fromkeys(loops, case.messages)
    if name == "persist-queue":
        counts["baseline"] = min(case.messages, 1_000)
    for key, loop in loops.items():
        loop(min(counts[key], 1_000))  # imports, first destinations
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(rounds):
        for key, loop in loops.items():
            best[key] = min(best[key], us_per_message(loop, counts[key]))
    budget = best["baseline"] / case.bar
    print(f"{case.provider}, {case.workload} (us per message, best of {rounds})")
    print(f"  {name:34s} {best['baseline']:9.1f}")
    print(f"  {'cloudqueue public API':34s} {best['api']:9.1f}   "
          f"{best['baseline'] / best['api']:.2f}x (bar {case.bar:g}x: needs <= {budget:.1f})")
    print(f"  {'driver alone':34s} {best['driver']:9.1f}")
    if "statements" in best:
        print(f"  {'its SQLite statements alone':34s} {best['statements']:9.1f}")
    print(f"  {'portable layer (API - driver)':34s} {best['api'] - best['driver']:9.1f}   "
          f"budget left by the bar: {budget - best['driver']:.1f}")
    print()
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(case.api, counts["api"])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
