"""Several processes on one SQLite file: no loss, no double lease, and crashes.

Workers run this file as a script (``python test_sqlite_processes.py <role> ...``)
so they are real, separate processes that can be killed with SIGKILL.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudqueue

LEASE = 30.0


# -- the worker processes --------------------------------------------------------------


def produce(url: str, first: int, count: int, batch: int) -> None:
    """Send ``count`` numbered messages; print each id once send returned."""
    with cloudqueue.open_producer(url) as producer:
        for start in range(first, first + count, batch):
            numbers = range(start, min(start + batch, first + count))
            ids = producer.send_batch([cloudqueue.Message(str(n)) for n in numbers])
            for number, message_id in zip(numbers, ids, strict=True):
                print(json.dumps([number, message_id]), flush=True)


def consume(url: str, log_path: str, done_flag: str, hold: float) -> None:
    """Process messages, logging [number, attempt, received, released] per delivery,
    until the producers are done and the queue stays empty; ``hold`` > 0 keeps the
    first batch unsettled that long (to be killed holding it)."""
    with open(log_path, "a") as log, \
            cloudqueue.open_consumer(url, max_in_flight=200) as consumer:
        idle_since = time.monotonic()
        while True:
            batch = consumer.receive(max_messages=100, wait=0.5)
            received = time.time()
            if not batch:
                if os.path.exists(done_flag) and time.monotonic() - idle_since > 1.5:
                    return
                continue
            idle_since = time.monotonic()
            if hold:
                print("holding", flush=True)
                time.sleep(hold)
            for message in batch:
                message.ack()
                log.write(json.dumps(
                    [int(message.text()), message.delivery_attempt, received, time.time()]
                ) + "\n")
            log.flush()


def hold(url: str, settled: int, held: int) -> None:
    """Ack ``settled`` messages and close (so the acks are flushed), print their
    numbers; then receive ``held`` more, print them and keep them (to be killed)."""
    with cloudqueue.open_consumer(url, max_in_flight=settled) as consumer:
        acked = _receive(consumer, settled)
        for message in acked:
            message.ack()
    print(json.dumps([int(message.text()) for message in acked]), flush=True)
    with cloudqueue.open_consumer(url, max_in_flight=held) as consumer:
        holding = _receive(consumer, held)
        print(json.dumps([int(message.text()) for message in holding]), flush=True)
        time.sleep(600)  # the consumer renews their leases meanwhile


def _receive(consumer: cloudqueue.Consumer, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    while len(got) < count:
        got += consumer.receive(max_messages=count - len(got), wait=1.0)
    return got


# -- helpers ----------------------------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def read_log(path: Path) -> list[list[float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def declare(url: str, lease: float) -> None:
    cloudqueue.declare(url, lease=lease)


# -- tests ---------------------------------------------------------------------------------


def test_four_producers_four_consumers_twenty_thousand_messages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db?queue=work"
    declare(url, LEASE)
    per_producer, done_flag = 5_000, str(tmp_path / "producers-done")
    consumers = [spawn("consume", url, str(tmp_path / f"c{i}.log"), done_flag, "0") for i in range(4)]
    producers = [spawn("produce", url, str(i * per_producer), str(per_producer), "100")
                 for i in range(4)]
    sent = set()
    for producer in producers:
        out, _ = producer.communicate(timeout=90)
        assert producer.returncode == 0
        sent |= {json.loads(line)[0] for line in out.splitlines()}
    Path(done_flag).touch()
    for consumer in consumers:
        consumer.communicate(timeout=90)
        assert consumer.returncode == 0
    assert sent == set(range(4 * per_producer))

    deliveries: dict[int, list[tuple[float, float, int]]] = {}
    for index in range(4):
        for number, _attempt, received, released in read_log(tmp_path / f"c{index}.log"):
            deliveries.setdefault(int(number), []).append((received, released, index))
    assert set(deliveries) == sent  # every message processed
    for number, held in deliveries.items():
        # Leases of one message, as [received, min(released, received + lease)], never overlap.
        spans = sorted((start, min(end, start + LEASE)) for start, end, _ in held)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"message {number} was under two live leases: {held}"


def test_killed_producer_and_consumer_lose_nothing_reported_sent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crash.db?queue=work"
    short_lease = 1.0
    declare(url, short_lease)

    # A producer killed mid-send: every id it printed was returned by send.
    producer = spawn("produce", url, "0", "1000000", "7")
    assert producer.stdout is not None
    reported: set[int] = set()
    while len(reported) < 3_000:
        line = producer.stdout.readline()
        assert line, "producer ended early"
        reported.add(json.loads(line)[0])
    producer.send_signal(signal.SIGKILL)
    rest, _ = producer.communicate(timeout=30)
    reported |= {json.loads(line)[0] for line in rest.splitlines() if line.strip()}

    # A consumer killed while it holds a batch it has not settled.
    log = tmp_path / "killed.log"
    consumer = spawn("consume", url, str(log), str(tmp_path / "never"), "60")
    assert consumer.stdout is not None
    assert consumer.stdout.readline().strip() == "holding"
    consumer.send_signal(signal.SIGKILL)
    consumer.communicate(timeout=30)
    assert read_log(log) == []  # it died before settling anything

    delivered: set[int] = set()
    with cloudqueue.open_consumer(url) as survivor:
        deadline = time.monotonic() + 60
        while not reported <= delivered and time.monotonic() < deadline:
            for message in survivor.receive(max_messages=500, wait=1.0):
                delivered.add(int(message.text()))
                message.ack()
    missing = reported - delivered
    assert not missing, f"{len(missing)} messages reported sent were never delivered"


def test_killed_consumer_leases_end_after_its_death_and_flushed_acks_stay_done(
    tmp_path: Path,
) -> None:
    """A consumer process SIGKILLed while it holds leased messages: while it lives its
    consumer renews their leases (no one else gets them); once it is dead they come
    back when their lease ends, with ``delivery_attempt`` 2; the acks it flushed (by
    closing an earlier consumer) stay done; nothing is lost."""
    url = f"sqlite:///{tmp_path}/held.db?queue=work"
    lease, total = 2.0, 60
    declare(url, lease)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(str(n)) for n in range(total)])

    holder = spawn("hold", url, "10", "20")
    assert holder.stdout is not None
    acked = set(json.loads(holder.stdout.readline()))
    held = set(json.loads(holder.stdout.readline()))
    assert len(acked) == 10 and len(held) == 20 and not acked & held

    attempts: dict[int, list[tuple[int | None, float]]] = {}

    def receive_for(consumer: cloudqueue.Consumer, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in consumer.receive(max_messages=100, wait=0.2):
                attempts.setdefault(int(message.text()), []).append(
                    (message.delivery_attempt, time.monotonic())
                )
                message.ack()

    try:
        with cloudqueue.open_consumer(url) as survivor:
            # Three leases long: without the holder's renewals its messages would be back.
            receive_for(survivor, lease * 3)
            assert set(attempts) == set(range(total)) - acked - held
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            killed_at = time.monotonic()
            receive_for(survivor, lease + 4.0)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)

    assert set(attempts) == set(range(total)) - acked, "lost, or an acked message came back"
    for number in held:
        ((attempt, at),) = attempts[number]
        assert attempt == 2, (number, attempt)
        assert at - killed_at <= lease + 2.5, f"message {number} came back {at - killed_at:.1f}s after"
    assert all(len(seen) == 1 for seen in attempts.values()), attempts


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "produce":
        produce(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    elif role == "hold":
        hold(rest[0], int(rest[1]), int(rest[2]))
    else:
        consume(rest[0], rest[1], rest[2], float(rest[3]))
