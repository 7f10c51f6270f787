"""Administration client, the async SDK, and the command-line entry point."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_admin_create_get_update_delete(broker: ServiceBusBroker) -> None:
    admin = broker.administration_client()
    created = admin.create_queue(
        "admin-q", max_delivery_count=3, lock_duration=timedelta(seconds=5), requires_session=True,
        requires_duplicate_detection=True, duplicate_detection_history_time_window=timedelta(minutes=2),
        default_message_time_to_live=timedelta(hours=1), dead_lettering_on_message_expiration=True,
        max_message_size_in_kilobytes=512,
    )
    assert created.max_delivery_count == 3
    with pytest.raises(ResourceExistsError):
        admin.create_queue("admin-q")
    got = admin.get_queue("admin-q")
    assert (got.lock_duration, got.requires_session) == (timedelta(seconds=5), True)
    assert got.duplicate_detection_history_time_window == timedelta(minutes=2)
    assert got.default_message_time_to_live == timedelta(hours=1)
    assert got.dead_lettering_on_message_expiration is True
    assert got.max_message_size_in_kilobytes == 512
    got.max_delivery_count = 9
    admin.update_queue(got)
    assert admin.get_queue("admin-q").max_delivery_count == 9
    assert "admin-q" in [q.name for q in admin.list_queues()]
    admin.delete_queue("admin-q")
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue("admin-q")
    with pytest.raises(ResourceNotFoundError):
        admin.delete_queue("admin-q")


def test_admin_topics_subscriptions_and_counts(broker: ServiceBusBroker, client: ServiceBusClient) -> None:
    admin = broker.administration_client()
    admin.create_topic("admin-t")
    admin.create_subscription("admin-t", "s1", max_delivery_count=4, requires_session=False)
    with pytest.raises(ResourceExistsError):
        admin.create_subscription("admin-t", "s1")
    with pytest.raises(ResourceNotFoundError):
        admin.get_subscription("admin-t", "nope")
    assert admin.get_subscription("admin-t", "s1").max_delivery_count == 4
    assert [s.name for s in admin.list_subscriptions("admin-t")] == ["s1"]
    with client.get_topic_sender("admin-t") as sender:
        sender.send_messages([ServiceBusMessage("x"), ServiceBusMessage("y")])
    runtime = admin.get_subscription_runtime_properties("admin-t", "s1")
    assert runtime.active_message_count == 2
    admin.delete_subscription("admin-t", "s1")
    admin.delete_topic("admin-t")
    with pytest.raises(ResourceNotFoundError):
        admin.get_topic("admin-t")


def test_async_sdk_round_trip(broker: ServiceBusBroker, queue: str) -> None:
    async def run() -> list[str]:
        async with AsyncServiceBusClient.from_connection_string(broker.connection_string) as sb:
            async with sb.get_queue_sender(queue) as sender:
                batch = await sender.create_message_batch()
                for i in range(5):
                    batch.add_message(ServiceBusMessage(f"async{i}"))
                await sender.send_messages(batch)
            bodies: list[str] = []
            async with sb.get_queue_receiver(queue, prefetch_count=10) as receiver:
                deadline = time.monotonic() + 5
                while len(bodies) < 5 and time.monotonic() < deadline:
                    for msg in await receiver.receive_messages(max_message_count=5, max_wait_time=1):
                        bodies.append(str(msg))
                        if msg.sequence_number == 1:
                            await receiver.abandon_message(msg)
                        else:
                            await receiver.complete_message(msg)
                [again] = await receiver.receive_messages(max_message_count=1, max_wait_time=3)
                assert again.delivery_count == 1
                await receiver.complete_message(again)
            return bodies

    assert asyncio.run(run()) == [f"async{i}" for i in range(5)]
    assert broker.message_counts(queue)["total"] == 0


def test_cli_serves_until_sigterm() -> None:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudqueue_azure_servicebus.testing", "--port", "0", "--queue", "cli-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("Endpoint=sb://127.0.0.1:") and line.endswith("UseDevelopmentEmulator=true")
        with ServiceBusClient.from_connection_string(line) as sb:
            with sb.get_queue_sender("cli-q") as sender:
                sender.send_messages(ServiceBusMessage("via cli"))
            with sb.get_queue_receiver("cli-q") as receiver:
                [msg] = receiver.receive_messages(max_wait_time=5)
                assert str(msg) == "via cli"
                receiver.complete_message(msg)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_refuses_non_loopback_bind() -> None:
    with pytest.raises(ValueError):
        ServiceBusBroker(host="0.0.0.0")
