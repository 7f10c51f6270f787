"""The contract suite: what every provider, ours or a third party's, must pass.

Opt in from your provider's tests with a harness (see :class:`Harness`)::

    import pytest
    from cloudqueue.testing.contract import ContractSuite, Harness

    class ExampleHarness(Harness):
        supports_dead_letter = True
        def make(self, **settings):
            ...  # declare a fresh destination, return a Destination

    class TestExample(ContractSuite):
        @pytest.fixture
        def harness(self):
            return ExampleHarness()

Cases are driven by the harness's claims: a claimed feature must work, an
unclaimed one must raise :class:`cloudqueue.Unsupported`. Nothing is skipped.

Providers that talk to a server also opt into :class:`ConnectionFaults` (every
connection cut mid-send, mid-receive and with acks pending), with a harness whose
``fault_proxy`` stands between the SDK and the server (see :mod:`.faults`).

:class:`LargePayloads` (claim-check offloading) is opted into apart: it starts the object
stores it names in ``payload_stores`` itself (file, S3 on LocalStack, the GCS emulator,
Azurite); see :mod:`.large_payloads`.

:class:`TypedMessages` (codecs, typed worker handlers) and :class:`CloudEvents` need the
optional pydantic, msgspec and cloudevents packages installed where the suite runs.
"""

from __future__ import annotations

from ._base import collect, quiet_for
from ._harness import DeclaringHarness, Destination, Harness, eventually, unique_name
from .asyncio_api import AsyncAPI
from .cloudevents import CloudEvents
from .delivery import Delivery
from .faults import ConnectionFaults
from .filters import FilteringHarness, Filters
from .large_payloads import LargePayloads
from .lifecycle import Lifecycle
from .operations import Operations
from .ordering import Ordering
from .properties import Properties
from .publish_receive import PublishReceive
from .typed import TypedMessages

__all__ = [
    "AsyncAPI",
    "CloudEvents",
    "ConnectionFaults",
    "ContractSuite",
    "DeclaringHarness",
    "Delivery",
    "Destination",
    "FilteringHarness",
    "Filters",
    "Harness",
    "LargePayloads",
    "Lifecycle",
    "Operations",
    "Ordering",
    "Properties",
    "PublishReceive",
    "TypedMessages",
    "collect",
    "eventually",
    "quiet_for",
    "unique_name",
]


class ContractSuite(
    PublishReceive, Delivery, Ordering, Lifecycle, AsyncAPI, Properties, Filters, Operations,
    TypedMessages, CloudEvents,
):
    """Every behaviour class at once; subclass it and provide a ``harness`` fixture."""
