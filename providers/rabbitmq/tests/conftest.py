"""Fixtures for the RabbitMQ provider's tests: real RabbitMQ brokers started as host processes.

``rabbitmq_server`` is one broker shared by the whole session (each pytest-xdist worker starts
its own); tests on it use their own queue names (``queue_name``). Tests that stop, restart or
kill a broker take ``private_rabbitmq_server``, a broker of their own module, so that they never
disturb the shared one. Starting a broker takes about 5 s on an idle machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cloudqueue_rabbitmq.testing import RabbitMqServer


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMqServer]:
    """The session's broker; never stopped or restarted by a test."""
    with RabbitMqServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_server: RabbitMqServer) -> str:
    """``amqp://user:password@127.0.0.1:PORT/`` of the session's broker (the default vhost)."""
    return rabbitmq_server.url


@pytest.fixture(scope="module")
def private_rabbitmq_server() -> Iterator[RabbitMqServer]:
    """A broker for this module alone: its tests may restart or stop it."""
    with RabbitMqServer() as server:
        yield server


@pytest.fixture
def queue_name() -> str:
    """A queue name no other test uses."""
    return f"cq-test-{uuid.uuid4().hex[:12]}"
