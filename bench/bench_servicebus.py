"""Service Bus: the portable API vs a hand-written loop on the official SDK.

Both run against the local broker in this process, one after the other:
20,000 messages sent (batched), received and completed. Closing an SDK receiver joins
its keep-alive thread, which sleeps in 1 s steps, so each run's time moves in whole
seconds: at 5,000 messages (about 7 s a run) that step was a seventh of a run, and the
ratio swung from 0.99x to 1.28x between runs of identical code. The SDK loop batches sends
in ServiceBusMessageBatch and reuses one sender and one receiver, as a careful
user would. Also prints the broker thread's share of the CPU time of each run.

Redrive (issue 14): the shared workload of ``_ops_workload`` on the same broker:
``cloudqueue.ops.redrive`` of N dead letters back to their queue vs the portable batched
send of the same messages, in the same run; bar 0.8x. Service Bus settles one message per
request (complete by lock token), where a send carries a whole batch: the by-hand row
(receive, send_batch, ack through the public API) shows what that costs any mover.

    python bench/bench_servicebus.py [--count 20000] [--redrive 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable
from urllib.parse import quote

import _report
from _ops_workload import BAR, compare
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

import cloudqueue


def broker_cpu(broker: ServiceBusBroker) -> Callable[[], float]:
    """CPU seconds used so far by the broker's thread (from /proc, Linux)."""
    thread = broker._thread
    assert thread is not None and thread.native_id is not None
    path = f"/proc/self/task/{thread.native_id}/stat"
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


def portable(url: str, count: int) -> None:
    with cloudqueue.open_producer(url) as producer:
        for start in range(0, count, 100):
            producer.send_batch([cloudqueue.Message(f"m{i}") for i in range(start, min(count, start + 100))])
    got = 0
    with cloudqueue.open_consumer(url) as consumer:
        while got < count:
            for message in consumer.receive(max_messages=100, wait=2.0):
                message.ack()
                got += 1


def sdk_loop(client: ServiceBusClient, queue: str, count: int) -> None:
    with client.get_queue_sender(queue) as sender:
        for start in range(0, count, 100):
            batch = sender.create_message_batch()
            for i in range(start, min(count, start + 100)):
                batch.add_message(ServiceBusMessage(f"m{i}"))
            sender.send_messages(batch)
    got = 0
    with client.get_queue_receiver(queue) as receiver:
        while got < count:
            for message in receiver.receive_messages(max_message_count=100, max_wait_time=2.0):
                receiver.complete_message(message)
                got += 1


def timed(run: Callable[[], None], cpu: Callable[[], float]) -> tuple[float, float, float]:
    cpu_before, wall_before, process_before = cpu(), time.perf_counter(), time.process_time()
    run()
    wall = time.perf_counter() - wall_before
    return wall, cpu() - cpu_before, time.process_time() - process_before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--redrive", type=int, default=1000, help="dead letters per redrive round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from cloudqueue import _registry

    manager = _registry.plugin_manager()
    if manager.get_plugin("azuresb") is None and not manager.is_registered(servicebus_provider):
        manager.register(servicebus_provider, name="azuresb")
        _registry._by_scheme = None
    with ServiceBusBroker() as broker:
        os.environ[CA_FILE_ENV] = broker.certificate_path
        cpu = broker_cpu(broker)
        query = "connection_string=" + quote(broker.connection_string, safe="")
        for name in ("bench-sdk", "bench-portable"):
            cloudqueue.declare(f"azuresb://local/{name}?{query}", lease=60.0)
        with ServiceBusClient.from_connection_string(broker.connection_string) as client:
            results = {
                "sdk loop": timed(lambda: sdk_loop(client, "bench-sdk", args.count), cpu),
                "portable": timed(
                    lambda: portable(f"azuresb://local/bench-portable?{query}", args.count), cpu
                ),
            }
            names = itertools.count()

            def redrive_queue() -> str:
                url = f"azuresb://local/bench-ops-{next(names)}?{query}"
                cloudqueue.declare(url, lease=60.0, dead_letter_after=5)
                return url

            redrive_ratio = compare("servicebus (local broker)", redrive_queue, args.redrive, args.rounds)
        servicebus_provider._PROVIDER.close()
    print(f"{args.count} messages sent, received and completed (local broker in-process)")
    for name, (wall, broker_seconds, process_seconds) in results.items():
        print(f"  {name:9} {wall:6.2f} s  {args.count / wall:7.0f} msg/s  "
              f"broker CPU {broker_seconds:5.2f} s = "
              f"{100 * broker_seconds / max(process_seconds, 1e-9):4.1f}% "
              f"of process CPU, {100 * broker_seconds / wall:4.1f}% of wall")
    ratio = results["sdk loop"][0] / results["portable"][0]
    workload = "send+receive+ack"  # complete is Service Bus's ack
    _report.figure("servicebus", workload, "cloudqueue (sync)", args.count / results["portable"][0])
    _report.figure("servicebus", workload, "azure-servicebus SDK loop",
                   args.count / results["sdk loop"][0], kind="baseline")
    _report.bar("servicebus: portable vs SDK loop", ratio, at_least=0.9)
    print(f"  portable / sdk loop throughput: {ratio:.2f}x (bar: >= 0.9x)")
    verdict = "PASS" if redrive_ratio >= BAR else "FAIL"
    print(f"{verdict}  redrive >= {BAR}x the batched send of the same messages ({redrive_ratio:.2f}x)")


if __name__ == "__main__":
    main()
