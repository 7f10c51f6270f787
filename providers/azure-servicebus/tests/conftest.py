"""Shared fixtures: one broker and one SDK client for the whole run (opening handlers is slow)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

_names = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker() as running:
        yield running


@pytest.fixture(scope="session")
def client(broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(broker.connection_string) as sb:
        yield sb


@pytest.fixture
def make_queue(broker: ServiceBusBroker) -> Any:
    def make(**props: Any) -> str:
        name = f"q{next(_names)}"
        broker.create_queue(name, **props)
        return name

    return make


@pytest.fixture
def queue(make_queue: Any) -> str:
    name: str = make_queue()
    return name


def receive_and_complete(receiver: Any, count: int) -> list[Any]:
    """Receive and complete up to ``count`` messages from an open receiver, giving up after
    10 s; what arrived."""
    out: list[Any] = []
    deadline = time.monotonic() + 10
    while len(out) < count and time.monotonic() < deadline:
        for msg in receiver.receive_messages(max_message_count=count - len(out), max_wait_time=1):
            receiver.complete_message(msg)
            out.append(msg)
    return out
