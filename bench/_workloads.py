"""Workloads and timing shared by the benchmarks, so every provider runs the same loops."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import cloudqueue

__all__ = ["BODY", "batched_round_trips", "best", "rates", "single_round_trips"]

BODY = b"x" * 100


def rates(runs: dict[str, tuple[int, Callable[[int], None]]], repeats: int) -> dict[str, list[float]]:
    """Messages per second of each ``run(count)`` in each of ``repeats`` rounds.

    The runs take turns, so a noisy neighbour slows all of them alike.
    """
    found: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (count, run) in runs.items():
            gc.collect()
            started = time.perf_counter()
            run(count)
            found[name].append(count / (time.perf_counter() - started))
    return found


def best(found: dict[str, list[float]]) -> dict[str, float]:
    return {name: max(values) for name, values in found.items()}


def batched_round_trips(url: str, count: int, **consumer_options: float) -> None:
    """send_batch(100), receive up to 100, ack each; until ``count`` messages went through."""
    with cloudqueue.open_producer(url) as producer, \
            cloudqueue.open_consumer(url, **consumer_options) as consumer:  # type: ignore[arg-type]
        for _ in range(count // 100):
            producer.send_batch([cloudqueue.Message(BODY) for _ in range(100)])
            received = 0
            while received < 100:
                batch = consumer.receive(max_messages=100 - received, wait=1.0)
                for message in batch:
                    message.ack()
                received += len(batch)


def single_round_trips(url: str, count: int, **consumer_options: float) -> None:
    """send one, receive one, ack it; ``count`` times."""
    with cloudqueue.open_producer(url) as producer, \
            cloudqueue.open_consumer(url, **consumer_options) as consumer:  # type: ignore[arg-type]
        for _ in range(count):
            producer.send(BODY)
            (message,) = consumer.receive(max_messages=1, wait=1.0)
            message.ack()
