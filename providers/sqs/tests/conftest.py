"""Fixtures for the SQS provider's tests: one LocalStack server per test session.

The LocalStack venv comes from ``$CLOUDQUEUE_LOCALSTACK_VENV`` (default ``<repo>/.venv-localstack``)
and is installed on first use (about 20-30 s, then reused). Set ``CLOUDQUEUE_SQS_ENDPOINT`` to reuse
a LocalStack that is already running instead of starting one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudqueue_sqs.testing import LocalStack, install_localstack

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_ENV = "CLOUDQUEUE_LOCALSTACK_VENV"


@pytest.fixture(scope="session")
def localstack_venv() -> Path:
    """The LocalStack venv, installed if missing (idempotent)."""
    venv = Path(os.environ.get(VENV_ENV) or REPO_ROOT / ".venv-localstack")
    install_localstack(venv)
    return venv


@pytest.fixture(scope="session")
def localstack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """A LocalStack server (SQS only) shared by the whole session."""
    if os.environ.get("CLOUDQUEUE_SQS_ENDPOINT"):
        server = LocalStack()  # reuses the endpoint from the environment; no venv needed
    else:
        server = LocalStack(request.getfixturevalue("localstack_venv"))
    with server:
        yield server


def sqs_client(endpoint_url: str) -> Any:
    """A boto3 SQS client for LocalStack (any credentials are accepted)."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def sqs(localstack: LocalStack) -> Any:
    """A boto3 SQS client bound to the session's LocalStack."""
    return sqs_client(localstack.endpoint_url)


@pytest.fixture
def queue_name() -> str:
    """A queue name no other test uses (a reused server may be shared by several sessions)."""
    return f"cq-test-{uuid.uuid4().hex[:12]}"
