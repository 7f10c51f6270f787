"""Soak: producers and consumers run for a fixed time; memory stays flat and throughput
steady, and every message sent is acked exactly once.

Opt-in (marker ``soak``, deselected by the default ``-m "not soak"``). The duration of
each run comes from ``CLOUDQUEUE_SOAK_SECONDS`` (default 10, what CI runs through
``scripts/test``); run it longer by hand::

    CLOUDQUEUE_SOAK_SECONDS=600 .venv/bin/pytest tests/test_soak.py -m soak -s

Two producer threads send batches while two consumer threads receive and ack, with a
600 s lease (no redelivery, no renewal: what is measured is the steady path). Producers
keep at most ``WINDOW`` messages unacked, so the queue's backlog stays bounded and its
memory legitimately flat. The run is cut into thirds:

- **memory**: Python allocations (tracemalloc) and, where ``/proc`` exists, the
  process's resident set; the median of the last third's samples may exceed the first
  third's by at most a bound;
- **throughput**: messages acked in the last third at least half of those in the first.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import cloudqueue

pytestmark = [pytest.mark.soak, pytest.mark.timeout(0)]

SECONDS = float(os.environ.get("CLOUDQUEUE_SOAK_SECONDS") or 10.0)
LEASE = 600.0
#: Messages sent and not yet acked, at most.
WINDOW = 2_000
BATCH = 50
PRODUCERS = CONSUMERS = 2
#: Growth allowed from the first third to the last: Python allocations, resident set.
TRACED_GROWTH = 1024 * 1024
RSS_GROWTH = 16 * 1024 * 1024
#: Throughput of the last third, at least this share of the first third's.
STEADY = 0.5
SAMPLE_EVERY = 0.2


@dataclass
class _Run:
    lock: threading.Lock = field(default_factory=threading.Lock)
    room: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(WINDOW))
    sent: int = 0
    acked: int = 0
    #: Bodies sent (or being sent) and not yet acked: at most WINDOW, so the
    #: bookkeeping itself does not grow with the run.
    outstanding: set[str] = field(default_factory=set)
    #: Bodies acked that were not outstanding: acked twice.
    repeated: int = 0
    #: (time.monotonic(), acked so far, traced bytes, resident bytes or None)
    samples: list[tuple[float, int, int, int | None]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)


def _resident_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _produce(url: str, run: _Run, name: str, stop: threading.Event) -> None:
    with cloudqueue.open_producer(url) as producer:
        index = 0
        while not stop.is_set():
            taken = 0
            while taken < BATCH and run.room.acquire(timeout=0.1):
                taken += 1
            if not taken:
                continue
            bodies = [f"{name}-{index + n}" for n in range(taken)]
            index += taken
            with run.lock:
                run.outstanding.update(bodies)
            producer.send_batch([cloudqueue.Message(body) for body in bodies])
            with run.lock:
                run.sent += taken


def _consume(url: str, run: _Run, stop: threading.Event) -> None:
    with cloudqueue.open_consumer(url, max_in_flight=500) as consumer:
        while not stop.is_set():
            batch = consumer.receive(max_messages=100, wait=0.2)
            for message in batch:
                message.ack()
            with run.lock:
                for message in batch:
                    body = message.text()
                    if body in run.outstanding:
                        run.outstanding.discard(body)
                    else:
                        run.repeated += 1
                run.acked += len(batch)
            for _ in batch:
                run.room.release()


def _guarded(run: _Run, work: Callable[..., None], *args: object) -> threading.Thread:
    def body() -> None:
        try:
            work(*args)
        except BaseException as error:  # reported to the test thread
            run.failures.append(error)

    thread = threading.Thread(target=body, name=f"soak {work.__name__}", daemon=True)
    thread.start()
    return thread


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        address = f"memory://soak-{os.getpid()}-{time.monotonic_ns()}"
    else:
        address = f"sqlite:///{tmp_path}/soak.db?queue=soak"
    cloudqueue.declare(address, lease=LEASE)
    yield address
    cloudqueue.delete(address)


def test_memory_stays_flat_and_throughput_steady(url: str) -> None:
    run = _Run()
    stop_producing, stop_consuming = threading.Event(), threading.Event()
    tracemalloc.start()
    try:
        threads = [
            _guarded(run, _produce, url, run, f"p{index}", stop_producing)
            for index in range(PRODUCERS)
        ] + [_guarded(run, _consume, url, run, stop_consuming) for _ in range(CONSUMERS)]
        started = time.monotonic()
        while (now := time.monotonic()) < started + SECONDS and not run.failures:
            with run.lock:
                acked = run.acked
            run.samples.append((now, acked, tracemalloc.get_traced_memory()[0], _resident_bytes()))
            time.sleep(SAMPLE_EVERY)
        stop_producing.set()
        for thread in threads[:PRODUCERS]:
            thread.join(60)
        # Drain what was sent before stopping the consumers.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not run.failures:
            with run.lock:
                if run.acked >= run.sent:
                    break
            time.sleep(0.05)
        stop_consuming.set()
        for thread in threads[PRODUCERS:]:
            thread.join(60)
    finally:
        tracemalloc.stop()
    assert not run.failures, run.failures
    assert not any(thread.is_alive() for thread in threads)

    # Every message sent was acked exactly once (a 600 s lease: no redelivery).
    assert (run.acked, run.repeated, len(run.outstanding)) == (run.sent, 0, 0)

    third = SECONDS / 3
    first = [sample for sample in run.samples if sample[0] < started + third]
    last = [sample for sample in run.samples if sample[0] >= started + 2 * third]
    assert len(first) >= 3 and len(last) >= 3, "too few samples"

    def acked_in(samples: list[tuple[float, int, int, int | None]]) -> float:
        """Messages acked per second over these samples."""
        return (samples[-1][1] - samples[0][1]) / max(samples[-1][0] - samples[0][0], 1e-9)

    first_rate, last_rate = acked_in(first), acked_in(last)
    traced = [statistics.median(s[2] for s in part) for part in (first, last)]
    resident_samples = [[s[3] for s in part if s[3] is not None] for part in (first, last)]
    resident = [statistics.median(part) if part else None for part in resident_samples]
    report = (
        f"{url.split(':')[0]}: {run.sent} messages in {SECONDS:g}s; acked/s first third "
        f"{first_rate:.0f}, last third {last_rate:.0f}; traced memory first "
        f"{traced[0] / 2**20:.1f} MiB, last {traced[1] / 2**20:.1f} MiB"
        + (
            f"; resident first {resident[0] / 2**20:.1f} MiB, last {resident[1] / 2**20:.1f} MiB"
            if resident[0] is not None and resident[1] is not None else ""
        )
    )
    print(report)
    assert first_rate > 0, report
    assert last_rate >= STEADY * first_rate, f"throughput fell: {report}"
    assert traced[1] - traced[0] <= TRACED_GROWTH, f"Python allocations grew: {report}"
    if resident[0] is not None and resident[1] is not None:
        assert resident[1] - resident[0] <= RSS_GROWTH, f"resident memory grew: {report}"
