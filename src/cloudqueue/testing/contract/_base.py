"""Fixtures and helpers shared by the contract suite's behaviour classes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cloudqueue

from ._harness import Destination, Harness

__all__ = ["SuiteBase", "cleaned_up", "collect"]


def collect(
    consumer: cloudqueue.Consumer,
    count: int,
    timeout: float,
    *,
    ack: bool = True,
) -> list[cloudqueue.ReceivedMessage]:
    """Receive until ``count`` messages came or ``timeout`` passed; ack them if asked."""
    got: list[cloudqueue.ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        batch = consumer.receive(max_messages=min(count - len(got), 100),
                                 wait=min(remaining, 1.0))
        for message in batch:
            if ack:
                message.ack()
        got.extend(batch)
    return got


def quiet_for(consumer: cloudqueue.Consumer, seconds: float) -> list[cloudqueue.ReceivedMessage]:
    """What arrives within ``seconds`` (expected: nothing)."""
    return collect(consumer, 1, seconds, ack=False)


def cleaned_up(
    harness: Harness, make: Callable[..., Destination]
) -> Iterator[Callable[..., Destination]]:
    """The body of a fixture yielding ``make``, whose destinations the harness cleans up
    when the test is over."""
    made: list[Destination] = []

    def factory(*args: Any, **kwargs: Any) -> Destination:
        destination = make(*args, **kwargs)
        made.append(destination)
        return destination

    yield factory
    for destination in made:
        harness.cleanup(destination)


class SuiteBase:
    """Gives every test a fresh destination from the provider's harness."""

    @pytest.fixture
    def harness(self) -> Harness:
        raise NotImplementedError(
            "a ContractSuite subclass must override the `harness` fixture"
        )

    @pytest.fixture
    def dest(self, harness: Harness) -> Iterator[Destination]:
        destination = harness.make()
        yield destination
        harness.cleanup(destination)

    @pytest.fixture
    def make(self, harness: Harness) -> Iterator[object]:
        """``make(**settings)`` for tests that need special destinations."""
        yield from cleaned_up(harness, harness.make)

    @staticmethod
    def wait_budget(harness: Harness, seconds: float) -> float:
        """A generous deadline for something expected after ``seconds``."""
        return seconds * 2 + harness.timer_slack * 4 + 5.0
