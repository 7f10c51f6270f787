"""The redrive workload every provider's bench runs: redrive throughput against the
provider's own batched send of the same messages, in the same run.

Call :func:`compare` from a provider's bench file with a function that makes a fresh,
declared queue (with a dead-letter queue) on that provider::

    from _ops_workload import compare
    compare("sqs (LocalStack)", make_queue, count=5000)

Each round fills a fresh queue's dead-letter queue with ``count`` dead letters (not
timed), times ``ops.redrive(..., limit=count)`` back to the queue (``limit`` ends the
run as the last one moves, instead of after the 2 s of quiet an open-ended run waits
for), then times one ``Producer.send_batch`` of the same messages, provenance
attributes included, to another fresh queue. Both times include opening and closing
their clients. The rounds alternate, so a noisy neighbour slows both alike; the best
of each is compared. Bar (issue 14): redrive >= 0.8x the batched send.
"""

from __future__ import annotations

import datetime
import gc
import time
from collections.abc import Callable

import _report

import cloudqueue
from cloudqueue import ops
from cloudqueue.wire import REDRIVE_ORIGINAL_ID, REDRIVE_REASON, REDRIVE_TIME

__all__ = ["BAR", "compare", "dead_letters", "messages"]

#: Redrive throughput over the batched send of the same messages, at least.
BAR = 0.8
_ATTRIBUTE_SETS = 10


def messages(count: int) -> list[cloudqueue.Message]:
    """``count`` messages of 100-odd bytes over 10 attribute sets (as the contract's)."""
    return [
        cloudqueue.Message(
            b"%06d" % index + b"x" * 100,
            attributes={"set": str(index % _ATTRIBUTE_SETS), "kind": f"k{index % 3}"},
        )
        for index in range(count)
    ]


def dead_letters(url: str, count: int) -> None:
    """Send ``count`` messages to ``url``, then receive and dead-letter each."""
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch(messages(count))
    with cloudqueue.open_consumer(url) as consumer:
        done = 0
        while done < count:
            for message in consumer.receive(max_messages=1000, wait=1.0):
                message.dead_letter("bench")
                done += 1


def _as_redriven(batch: list[cloudqueue.Message]) -> list[cloudqueue.Message]:
    """The same messages as a redrive sends them: provenance attributes included."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return [
        cloudqueue.Message(
            message.body,
            attributes={
                **message.attributes, REDRIVE_ORIGINAL_ID: f"id-{index}",
                REDRIVE_REASON: "bench", REDRIVE_TIME: now,
            },
        )
        for index, message in enumerate(batch)
    ]


def _time_redrive(make_queue: Callable[[], str], count: int) -> float:
    url = make_queue()
    dead_letters(url, count)
    dead_url = cloudqueue.dead_letter_url(url)
    gc.collect()
    started = time.perf_counter()
    report = ops.redrive(dead_url, to=url, limit=count)
    elapsed = time.perf_counter() - started
    if report.moved != count or report.failures:
        raise RuntimeError(f"redrive moved {report.moved} of {count}: {report.failures[:3]}")
    return count / elapsed


def _time_send(make_queue: Callable[[], str], count: int) -> float:
    url = make_queue()
    batch = _as_redriven(messages(count))
    gc.collect()
    started = time.perf_counter()
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch(batch)
    return count / (time.perf_counter() - started)


def _time_by_hand(make_queue: Callable[[], str], count: int) -> float:
    """What operators do without a redrive tool: receive a batch from the dead-letter
    queue, send copies in one batch, ack the batch (Service Bus Explorer's clone,
    send, complete), through the public blocking API."""
    url = make_queue()
    dead_letters(url, count)
    dead_url = cloudqueue.dead_letter_url(url)
    gc.collect()
    started = time.perf_counter()
    moved = 0
    with cloudqueue.open_consumer(dead_url) as consumer, \
            cloudqueue.open_producer(url) as producer:
        while moved < count:
            batch = consumer.receive(max_messages=1000, wait=1.0)
            producer.send_batch(
                [cloudqueue.Message(m.body, attributes=m.attributes) for m in batch]
            )
            for message in batch:
                message.ack()
            moved += len(batch)
    return count / (time.perf_counter() - started)


def compare(label: str, make_queue: Callable[[], str], count: int, repeats: int = 3) -> float:
    """Print redrive and batched-send rates on ``make_queue()`` queues and their ratio;
    return the ratio (best redrive over best send). Also prints the rate of a move by
    hand (receive, send, ack in batches) for scale: that is what a portable redrive
    does, a receive and an ack besides each send; memory and SQLite move dead letters
    in place instead (``SubscriptionDriver.move_dead_letters``)."""
    found: dict[str, list[float]] = {"redrive": [], "send": [], "by hand": []}
    for _ in range(repeats):
        found["redrive"].append(_time_redrive(make_queue, count))
        found["send"].append(_time_send(make_queue, count))
        found["by hand"].append(_time_by_hand(make_queue, count))
    best = {name: max(rates) for name, rates in found.items()}
    ratio = best["redrive"] / best["send"]
    print(f"{label}: {count:,} dead letters, best of {repeats} (worst in brackets)")
    for name, title in (
        ("redrive", "cloudqueue.ops.redrive"),
        ("send", "batched send, same messages"),
        ("by hand", "receive + send_batch + ack by hand"),
    ):
        print(f"  {title:36} {best[name]:10,.0f} msg/s  ({min(found[name]):,.0f})")
    verdict = "met" if ratio >= BAR else "MISSED"
    # The provider is the label's first word ("sqs (LocalStack)" -> "sqs"), as in the
    # other benchmarks' figures, so the page groups a provider's rows together.
    provider = label.split()[0]
    workload = "redrive dead letters"
    _report.figure(provider, workload, "cloudqueue.ops.redrive", best["redrive"])
    _report.figure(provider, workload, "cloudqueue send_batch, same messages", best["send"],
                   kind="baseline")
    _report.figure(provider, workload, "receive + send_batch + ack by hand", best["by hand"],
                   kind="reference")
    _report.bar(f"{provider}: redrive vs batched send", ratio, at_least=BAR)
    print(f"  {'redrive vs batched send':36} {ratio:10.2f}x     (bar {BAR}x: {verdict})")
    print(f"  {'redrive vs by hand':36} {best['redrive'] / best['by hand']:10.2f}x")
    return ratio
