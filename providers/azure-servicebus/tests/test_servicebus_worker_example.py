"""The orders example (examples/orders) runs as a worker on Service Bus: the local AMQP
broker, through azure-servicebus."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from test_contract_servicebus import ServiceBusHarness

from cloudqueue_azure_servicebus._names import CA_FILE_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

ORDERS_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "orders"
sys.path.insert(0, str(ORDERS_EXAMPLE))
import check_worker  # type: ignore[import-not-found]  # noqa: E402  (the example folder is no package)


@pytest.fixture
def admin_trust(broker: ServiceBusBroker, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """declare() manages entities over the broker's HTTPS admin endpoint: trust its certificate."""
    monkeypatch.setenv(CA_FILE_ENV, broker.certificate_path)
    yield


def test_orders_example_as_a_worker(broker: ServiceBusBroker, admin_trust: None) -> None:
    url = ServiceBusHarness(broker).url(unique_name("orders"))
    # A short lock keeps a message lost by a failed run from stalling the test.
    cloudqueue.declare(url, dead_letter_after=5, lease=2.0)
    result = check_worker.check(url, timeout=20.0)
    assert result.problems() == []
