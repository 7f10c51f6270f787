"""Hunting for a planted secret in everything a test run printed, logged or raised.

A provider's secrets test plants a recognisable secret (:func:`new_secret`) everywhere
a user can put one (URL user-info, an endpoint URL's user-info, secret parameters,
connection strings, environment variables), turns every logger to DEBUG
(:func:`log_everything`), provokes errors, and hands every object, error and CLI run to
a :class:`Exposure`; :meth:`Exposure.assert_clean` then greps it all, with the log
records and the captured standard streams, for the secret::

    exposure = Exposure(secret)
    with pytest.raises(cloudqueue.QueueError) as info:
        ...
    exposure.error(info.value)
    exposure.cli("send", "--url", url, "x")
    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cloudqueue
from cloudqueue import RetryPolicy

__all__ = ["SDK_LOGGERS", "Exposure", "log_everything", "new_secret"]

#: Loggers of the library and of the SDKs its providers use.
SDK_LOGGERS = (
    "cloudqueue",
    "botocore",
    "boto3",
    "urllib3",
    "s3transfer",
    "azure",
    "azure.servicebus",
    "azure.servicebus._pyamqp",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "uamqp",
    "grpc",
    "google",
    "google.api_core",
    "google.auth",
    "google.cloud.pubsub_v1",
    "asyncio",
)


def new_secret(kind: str = "S3cr3t") -> str:
    """A value that occurs nowhere unless it leaked: ``S3cr3t-<uuid hex>``."""
    return f"{kind}-{uuid.uuid4().hex}"


def log_everything(caplog: Any, names: Iterable[str] = SDK_LOGGERS) -> None:
    """Every logger (the root and ``names``) at DEBUG, captured by pytest's ``caplog``."""
    caplog.set_level(logging.DEBUG)
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)


def cloudqueue_command() -> str:
    """The ``cloudqueue`` console script of the running environment."""
    script = Path(sys.executable).parent / "cloudqueue"
    return str(script) if script.exists() else "cloudqueue"


class Exposure:
    """Everything a user could have seen, to be searched for one secret."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = secrets
        self.texts: list[tuple[str, str]] = []  # (where, text)

    def text(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def objects(self, *objects: object) -> None:
        """The ``repr()`` and ``str()`` of each object."""
        for obj in objects:
            kind = type(obj).__name__
            self.text(f"repr({kind})", repr(obj))
            self.text(f"str({kind})", str(obj))

    def error(self, error: BaseException) -> None:
        """An exception: its text, repr and whole traceback, causes included."""
        self.objects(error)
        self.text(f"traceback of {type(error).__name__}", "".join(traceback.format_exception(error)))

    def failed_round_trip(self, url: str, retry: RetryPolicy | None = None) -> None:
        """Send to and receive from ``url``, both of which must fail with a
        :class:`~cloudqueue.QueueError`; keep the producer's repr and both errors."""
        for what in ("send", "receive"):
            try:
                if what == "send":
                    with cloudqueue.open_producer(url, retry=retry) as producer:
                        self.objects(producer)
                        producer.send(b"x")
                else:
                    with cloudqueue.open_consumer(url, retry=retry) as consumer:
                        consumer.receive(max_messages=1, wait=1.0)
            except cloudqueue.QueueError as error:
                self.error(error)
            else:  # the URL holds the secret: it is not named here
                raise AssertionError(f"a {what} that should have failed succeeded")

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``cloudqueue`` command; its output is kept for the hunt."""
        run_env = dict(os.environ)
        run_env.update(env or {})
        result = subprocess.run(
            [cloudqueue_command(), *args], capture_output=True, text=True, env=run_env,
            cwd=cwd, timeout=timeout, check=False,
        )
        where = f"cloudqueue {args[0] if args else ''} (exit {result.returncode})"
        self.text(f"{where} stdout", result.stdout)
        self.text(f"{where} stderr", result.stderr)
        return result

    def assert_clean(self, *, caplog: Any = None, captured: Any = None) -> None:
        """Fail, naming where (with the secret masked), if any secret shows anywhere."""
        texts = list(self.texts)
        if caplog is not None:
            texts.append(("log text", caplog.text))
            for record in caplog.records:
                texts.append((f"log record {record.name}", record.getMessage()))
                texts.append((f"log record {record.name} args", repr(record.args)))
        if captured is not None:
            texts.append(("captured stdout", captured.out))
            texts.append(("captured stderr", captured.err))
        found = []
        for where, text in texts:
            for secret in self.secrets:
                if secret in text:
                    line = next(line for line in text.splitlines() if secret in line)
                    found.append(f"{where}: {line.replace(secret, '<SECRET>')[:300]}")
        assert not found, "a secret leaked:\n" + "\n".join(found)
        assert texts, "nothing was collected"
