"""pytest plugin (entry point ``pytest11``) of cloudqueue: cheap to import.

It registers the ``contract`` marker and a ``memory_url`` fixture giving a
fresh ``memory://`` destination per test. The contract suite itself is opted
into by subclassing :class:`cloudqueue.testing.contract.ContractSuite`.
"""

from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract: a case of the cloudqueue contract suite")


@pytest.fixture
def memory_url() -> str:
    """A fresh in-memory queue URL, unique to this test."""
    return f"memory://test-{os.getpid()}-{next(_counter)}"
