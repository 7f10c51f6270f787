"""Worker overhead and concurrency on the memory provider.

Run: ``python bench/bench_worker.py [--messages N] [--rounds R]``. Everything runs in
one process. Bars (issues 7 and 20): the worker with a no-op plain handler reaches at
least 50% of the blocking raw consumer loop (receive, ack), with a no-op coroutine
handler at least 85% of the asyncio raw loop; with a 10 ms I/O-bound handler,
concurrency 100 reaches at least 80x the throughput of concurrency 1.

Fairness: each round runs the raw loops and the workers back to back on fresh memory
queues of the same size, and the ratio is taken within the round, so a noisy
neighbour on a shared machine moves both sides of a ratio together; the spread over
rounds is printed. A coroutine handler runs on the asyncio consumer and a plain one
on the blocking consumer, so each is compared with the raw loop of its own API (and
the coroutine worker with the faster of the two raw loops as well).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import cloudqueue
import cloudqueue.aio
from cloudqueue.worker import App

_names = itertools.count()


def fill(count: int) -> str:
    url = f"memory://bench-worker-{next(_names)}"
    with cloudqueue.open_producer(url) as producer:
        for start in range(0, count, 1000):
            producer.send_batch([cloudqueue.Message(b"x" * 100) for _ in range(min(1000, count - start))])
    return url


def raw_loop(count: int) -> float:
    url = fill(count)
    started = time.perf_counter()
    with cloudqueue.open_consumer(url) as consumer:
        done = 0
        while done < count:
            for message in consumer.receive(100, 1.0):
                message.ack()
                done += 1
    return count / (time.perf_counter() - started)


def raw_async_loop(count: int) -> float:
    url = fill(count)

    async def main() -> float:
        started = time.perf_counter()
        async with cloudqueue.aio.open_consumer(url) as consumer:
            done = 0
            while done < count:
                for message in await consumer.receive(100, 1.0):
                    await message.ack()
                    done += 1
        return count / (time.perf_counter() - started)

    return asyncio.run(main())


def worker(count: int, handler: Callable[..., Any], concurrency: int) -> float:
    url = fill(count)
    app = App(concurrency=concurrency, max_in_flight=max(2 * concurrency, 200))
    app.add_handler(url, handler)

    async def main() -> float:
        started = time.perf_counter()
        serving = asyncio.create_task(app.serve())
        while app.counters()["processed"] < count:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        app.stop()
        await serving
        return count / elapsed

    return asyncio.run(main())


def best(run: Callable[[], float], repeats: int = 3) -> float:
    results = []
    for _ in range(repeats):
        gc.collect()
        results.append(run())
    return max(results)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1%}  min {min(values):6.1%}  max {max(values):6.1%}"


async def async_noop(message: cloudqueue.AsyncReceivedMessage) -> None:
    pass


def sync_noop(message: cloudqueue.ReceivedMessage) -> None:
    pass


async def io_bound(message: cloudqueue.AsyncReceivedMessage) -> None:
    await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    n = args.messages

    runs: dict[str, Callable[[], float]] = {
        "raw sync": lambda: raw_loop(n),
        "raw async": lambda: raw_async_loop(n),
        "coroutine": lambda: worker(n, async_noop, 100),
        "threads": lambda: worker(n, sync_noop, 8),
    }
    figures: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            gc.collect()
            figures[name].append(run())
    rounds = range(args.rounds)
    coro_vs_async = [figures["coroutine"][r] / figures["raw async"][r] for r in rounds]
    coro_vs_best = [
        figures["coroutine"][r] / max(figures["raw async"][r], figures["raw sync"][r]) for r in rounds
    ]
    threads_vs_sync = [figures["threads"][r] / figures["raw sync"][r] for r in rounds]
    print(f"{n} messages of 100 bytes on memory, {args.rounds} rounds; msg/s as median (min-max)")
    for label, name in [
        ("raw consumer loop, blocking (receive 100, ack)", "raw sync"),
        ("raw consumer loop, asyncio (receive 100, ack)", "raw async"),
        ("worker, no-op coroutine handler, concurrency 100", "coroutine"),
        ("worker, no-op plain handler, 8 threads", "threads"),
    ]:
        values = figures[name]
        print(f"  {label:50} {statistics.median(values):9.0f}  ({min(values):.0f}-{max(values):.0f})")
    print("ratios within each round:")
    print(f"  coroutine worker / asyncio raw loop      {spread(coro_vs_async)}  (bar 85%)")
    print(f"  coroutine worker / faster raw loop       {spread(coro_vs_best)}")
    print(f"  plain-handler worker / blocking raw loop {spread(threads_vs_sync)}  (bar 50%)")

    io_one = best(lambda: worker(100, io_bound, 1), repeats=1)
    io_many = best(lambda: worker(10000, io_bound, 100), repeats=2)
    print(f"10 ms handler, concurrency 1          {io_one:10.1f} msg/s")
    print(f"10 ms handler, concurrency 100        {io_many:10.1f} msg/s  {io_many / io_one:6.1f}x (bar 80x)")


if __name__ == "__main__":
    main()
