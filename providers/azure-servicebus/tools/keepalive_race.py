"""Reproduce azure-servicebus 7.15's keep-alive race against the local broker.

Receives N messages (peek-lock, ``prefetch_count=0``, never settled) in calls of up to
BATCH and counts lock tokens handed out on more than one message. Run it beside a few busy
loops; a short thread switch interval (the third argument, e.g. 1e-5) stands in for a
loaded machine. See docs/providers/azure-servicebus.md ("A race in the SDK").

    python tools/keepalive_race.py 20000 100 1e-5
"""

from __future__ import annotations

import collections
import sys
import time

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from cloudqueue_azure_servicebus.testing import ServiceBusBroker


def main(count: int, batch: int, switch_interval: float) -> None:
    sys.setswitchinterval(switch_interval)
    with ServiceBusBroker() as broker:
        broker.create_queue("q")
        with ServiceBusClient.from_connection_string(broker.connection_string) as client:
            with client.get_queue_sender("q") as sender:
                for start in range(0, count, 100):
                    sender.send_messages([ServiceBusMessage(f"m{i}" + "x" * 500)
                                          for i in range(start, min(count, start + 100))])
            tokens: collections.Counter[str] = collections.Counter()
            received = 0
            started = time.monotonic()
            with client.get_queue_receiver("q", prefetch_count=0) as receiver:
                while received < count and time.monotonic() - started < 120:
                    got = receiver.receive_messages(max_message_count=batch, max_wait_time=0.25)
                    received += len(got)
                    tokens.update(str(message.lock_token) for message in got)
            shared = sum(n - 1 for n in tokens.values())
            print(f"lock tokens handed out twice: {shared}; received {received}/{count} "
                  f"in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
