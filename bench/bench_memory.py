"""The memory provider through the public API vs kombu's memory transport and a bare deque.

Run: ``python bench/bench_memory.py [--messages N] [--flow N]``. Everything runs
in one process, one after the other, so the ratios compare like with like.
Bars (issue 20, raised from issue 2's 5x and 1.5x): batched >= 10x kombu;
one-at-a-time >= 2x kombu; async within 2x of sync; a million messages flowing
(backlog < 10,000, consumer capped at 1,000 in flight) grow peak memory by less
than 50 MB. Bar (issue 10): a backlog spread over 100 ordering keys on an ordered
topic drains at >= 0.5x the same backlog without keys.

The flowing figures come from two runs: throughput without tracemalloc (which
slows every allocation it traces several times over), then peak memory under it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import itertools
import threading
import time
import tracemalloc

import _report
from _workloads import BODY, batched_round_trips, best, rates, single_round_trips

import cloudqueue

_names = itertools.count()


def fresh_url() -> str:
    return f"memory://bench-{next(_names)}"


def cq_batched(count: int) -> None:
    batched_round_trips(fresh_url(), count)


def cq_single(count: int) -> None:
    single_round_trips(fresh_url(), count)


KEYS = 100


def _drain_backlog(count: int, *, ordered: bool) -> None:
    """Send ``count`` messages (over ``KEYS`` ordering keys, if ordered), then receive
    and ack them 100 at a time: the steady state of a consumer with a backlog."""
    url = fresh_url()
    if ordered:
        cloudqueue.declare(url, ordered=True)
    with cloudqueue.open_producer(url) as producer:
        for start in range(0, count, 100):
            producer.send_batch([
                cloudqueue.Message(BODY, ordering_key=f"k{i % KEYS}" if ordered else None)
                for i in range(start, start + 100)
            ])
    with cloudqueue.open_consumer(url) as consumer:
        received = 0
        while received < count:
            batch = consumer.receive(max_messages=100, wait=1.0)
            for message in batch:
                message.ack()
            received += len(batch)


def cq_backlog(count: int) -> None:
    _drain_backlog(count, ordered=False)


def cq_backlog_ordered(count: int) -> None:
    _drain_backlog(count, ordered=True)


# -- cloudqueue, asyncio -----------------------------------------------------------


def cq_async_batched(count: int) -> None:
    async def main() -> None:
        url = fresh_url()
        async with cloudqueue.aio.open_producer(url) as producer, \
                cloudqueue.aio.open_consumer(url) as consumer:
            for _ in range(count // 100):
                await producer.send_batch([cloudqueue.Message(BODY) for _ in range(100)])
                received = 0
                while received < 100:
                    batch = await consumer.receive(max_messages=100 - received, wait=1.0)
                    for message in batch:
                        await message.ack()
                    received += len(batch)

    asyncio.run(main())


def cq_async_single(count: int) -> None:
    async def main() -> None:
        url = fresh_url()
        async with cloudqueue.aio.open_producer(url) as producer, \
                cloudqueue.aio.open_consumer(url) as consumer:
            for _ in range(count):
                await producer.send(BODY)
                (message,) = await consumer.receive(max_messages=1, wait=1.0)
                await message.ack()

    asyncio.run(main())


# -- baselines ---------------------------------------------------------------------


def kombu_batched(count: int) -> None:
    from kombu import Connection

    with Connection("memory://") as connection:
        queue = connection.SimpleQueue(f"bench-{next(_names)}")
        for _ in range(count // 100):
            for _ in range(100):
                queue.put(BODY)
            for _ in range(100):
                queue.get(block=True, timeout=1).ack()
        queue.close()


def kombu_single(count: int) -> None:
    from kombu import Connection

    with Connection("memory://") as connection:
        queue = connection.SimpleQueue(f"bench-{next(_names)}")
        for _ in range(count):
            queue.put(BODY)
            queue.get(block=True, timeout=1).ack()
        queue.close()


def deque_loop(count: int) -> None:
    """The floor: a deque plus a dict of unacked messages, no API at all."""
    ready: collections.deque[tuple[int, bytes]] = collections.deque()
    unacked: dict[int, bytes] = {}
    for index in range(count):
        ready.append((index, BODY))
        tag, body = ready.popleft()
        unacked[tag] = body
        del unacked[tag]


# -- a million messages flowing --------------------------------------------------


def flow(total: int, *, trace: bool) -> tuple[float, float | None]:
    """Producer and consumer threads together; returns (msg/s, peak MB growth if
    ``trace``, else None). Tracing distorts the speed, so each figure gets its own run."""
    url = fresh_url()
    backlog_cap = 10_000
    sent = 0
    received = 0
    lock = threading.Condition()
    gc.collect()
    if trace:
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]

    def produce() -> None:
        nonlocal sent
        with cloudqueue.open_producer(url) as producer:
            while sent < total:
                with lock:
                    while sent - received >= backlog_cap:
                        lock.wait()
                batch = [cloudqueue.Message(BODY) for _ in range(min(100, total - sent))]
                producer.send_batch(batch)
                with lock:
                    sent += len(batch)

    def consume() -> None:
        nonlocal received
        with cloudqueue.open_consumer(url, max_in_flight=1000) as consumer:
            while received < total:
                batch = consumer.receive(max_messages=100, wait=1.0)
                for message in batch:
                    message.ack()
                with lock:
                    received += len(batch)
                    lock.notify_all()

    started = time.perf_counter()
    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if not trace:
        return total / elapsed, None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return total / elapsed, (peak - baseline) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--flow", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.messages

    # The runs take turns, best of three each: a noisy neighbour slows all alike.
    results = best(rates({
        "cloudqueue batched (sync)": (n, cq_batched),
        "cloudqueue batched (async)": (n, cq_async_batched),
        "kombu batched": (n, kombu_batched),
        "cloudqueue one-at-a-time (sync)": (n, cq_single),
        "cloudqueue one-at-a-time (async)": (n, cq_async_single),
        "kombu one-at-a-time": (n, kombu_single),
        "bare deque loop": (n, deque_loop),
        "cloudqueue backlog, no keys": (n, cq_backlog),
        f"cloudqueue backlog, {KEYS} ordering keys": (n, cq_backlog_ordered),
    }, repeats=3))
    print(f"{'workload':40} {'msg/s':>12}")
    for name, value in results.items():
        print(f"{name:40} {value:12,.0f}")
    ratios = [
        ("batched: cloudqueue / kombu", results["cloudqueue batched (sync)"]
         / results["kombu batched"], 10.0),
        ("one-at-a-time: cloudqueue / kombu", results["cloudqueue one-at-a-time (sync)"]
         / results["kombu one-at-a-time"], 2.0),
        ("batched: async / sync", results["cloudqueue batched (async)"]
         / results["cloudqueue batched (sync)"], 0.5),
        ("one-at-a-time: async / sync", results["cloudqueue one-at-a-time (async)"]
         / results["cloudqueue one-at-a-time (sync)"], 0.5),
        (f"backlog: {KEYS} ordering keys / no keys",
         results[f"cloudqueue backlog, {KEYS} ordering keys"]
         / results["cloudqueue backlog, no keys"], 0.5),
    ]
    print()
    for label, value, bar in ratios:
        verdict = "meets" if value >= bar else "MISSES"
        print(f"{label:40} {value:8.2f}x  (bar {bar:g}x: {verdict})")
        _report.bar(f"memory {label}", value, at_least=bar)
    _report_figures(results)
    if args.flow:
        throughput, _ = flow(args.flow, trace=False)
        _, growth = flow(args.flow, trace=True)
        assert growth is not None
        verdict = "meets" if growth < 50 else "MISSES"
        print(f"\n{args.flow:,} messages flowing: {throughput:,.0f} msg/s (untraced run), "
              f"peak memory growth {growth:.1f} MB (traced run; bar < 50 MB: {verdict})")
        _report.figure("memory", "producer and consumer threads", "cloudqueue (sync)", throughput)
        _report.bar("memory: peak MB growth, 1M messages flowing", growth, at_most=50.0)


def _report_figures(results: dict[str, float]) -> None:
    """Hand the throughputs to run_all (a no-op when run by hand)."""
    for workload, ours, theirs in (
        ("batched round trips", "batched", "kombu batched"),
        ("one-at-a-time round trips", "one-at-a-time", "kombu one-at-a-time"),
    ):
        for api in ("sync", "async"):
            _report.figure("memory", workload, f"cloudqueue ({api})",
                           results[f"cloudqueue {ours} ({api})"])
        _report.figure("memory", workload, "kombu memory transport", results[theirs],
                       kind="baseline")
    _report.figure("memory", "one-at-a-time round trips", "bare deque loop",
                   results["bare deque loop"], kind="reference")
    _report.figure("memory", "backlog drain", "cloudqueue, no keys",
                   results["cloudqueue backlog, no keys"])
    _report.figure("memory", "backlog drain", f"cloudqueue, {KEYS} ordering keys",
                   results[f"cloudqueue backlog, {KEYS} ordering keys"])


if __name__ == "__main__":
    main()
