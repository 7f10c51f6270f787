"""The contract-suite harnesses of the SNS provider: topics with SQS subscriptions on
the session's LocalStack (which serves SNS and STS beside SQS)."""

from __future__ import annotations

import contextlib
from urllib.parse import urlencode

import cloudqueue
from cloudqueue.testing.contract import Destination, Harness, unique_name
from conftest_driver import SqsHarness


class SnsHarness(SqsHarness):
    """Fresh topics, each with its subscriptions (SQS queues) declared through sns:// URLs."""

    supports_fan_out = True
    supports_delayed_delivery = False  # SNS cannot delay a message
    # Twice SQS's: with 1 s, the dead-letter cases' consumer (holding 100 messages whose
    # leases the engine renews) lost a lease now and then under the whole suite's load,
    # and a message dead-lettered twice came back twice from the redrive.
    short_lease = 2.0
    # What cloudqueue_sqs._filter_policy refuses (its docstring says why): the empty value
    # (sent as the placeholder '-', so '-' too), and double quotes and backslashes, whose
    # escaping in attribute filter policies LocalStack does not do as AWS documents.
    filter_unexpressible_values = frozenset({"", "-", 'say "hi"', "back\\slash", 'say "', "back\\"})
    # A subscription's dead letters are an SQS queue whose redrive goes back to that
    # subscription's queue only.
    redrive_subscription = True

    def url(self, name: str, subscription: str | None = None) -> str:
        params = {"region": "us-east-1", "endpoint_url": self.endpoint_url}
        if subscription is not None:
            params["subscription"] = subscription
        return f"sns://{name}?{urlencode(params)}"

    def make(
        self,
        *,
        ordered: bool = False,
        deduplicated: bool = False,
        dead_letter_after: int | None = None,
        lease: float | None = None,
        subscriptions: int = 1,
    ) -> Destination:
        name = unique_name("t") + (".fifo" if self.fifo else "")
        lease = lease or self.short_lease
        urls = [self.url(name, f"s{index}") for index in range(subscriptions)]
        for url in urls:
            cloudqueue.declare(
                url, ordered=ordered, deduplicated=deduplicated,
                dead_letter_after=dead_letter_after, lease=lease,
            )
        return Destination(
            self.url(name), urls[0], tuple(urls[1:]), lease=lease,
            dead_letter_after=dead_letter_after, ordered=ordered, deduplicated=deduplicated,
        )

    def missing_url(self) -> str:
        return self.url(unique_name("missing"), "nobody")

    def cleanup(self, destination: Destination) -> None:
        # Deleting the topic deletes its subscriptions' queues and their dead-letter twins.
        with contextlib.suppress(cloudqueue.QueueError):
            cloudqueue.delete(destination.producer_url)


class SnsFifoHarness(SnsHarness):
    supports_ordering = True
    supports_deduplication = True

    def __init__(self, endpoint_url: str) -> None:
        super().__init__(endpoint_url, fifo=True)


__all__ = ["Harness", "SnsFifoHarness", "SnsHarness"]
