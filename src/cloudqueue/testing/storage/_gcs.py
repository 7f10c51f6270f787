"""Google Cloud Storage's stand-in for tests: ``gcp-storage-emulator`` (PyPI) on 127.0.0.1.

Its only dependency is ``google-crc32c``, so it lives in the test environment (the ``dev``
extra) and runs with this interpreter, data in memory. The official client reaches it
through ``STORAGE_EMULATOR_HOST``. What it still approximates: it checks no credentials
and no IAM (every request is allowed, so a refused one cannot be provoked against it), and
the tests exercise only what the payload store calls (bucket create and list; object
upload, simple and resumable, download and delete).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._process import EmulatorError, EmulatorProcess

__all__ = ["GCS_EMULATOR_VERSION", "GcsEmulator"]

GCS_EMULATOR_VERSION = "2026.7.19"
"""The ``gcp-storage-emulator`` release the runner is tested with (pinned in the dev extra)."""

EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"


class GcsEmulator(EmulatorProcess):
    """``gcp-storage-emulator`` on ``127.0.0.1``, data in memory::

        with GcsEmulator() as gcs:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.emulator_host)
            client = google.cloud.storage.Client(project="test")

    ``python`` is the interpreter that has the emulator installed (default: this one).
    """

    name = "gcp-storage-emulator"

    def __init__(
        self,
        *,
        python: str | os.PathLike[str] | None = None,
        port: int | None = None,
        start_timeout: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        super().__init__(port=port, start_timeout=start_timeout, stop_grace=stop_grace)
        self._python = str(python) if python is not None else sys.executable

    @property
    def emulator_host(self) -> str:
        """The value for ``STORAGE_EMULATOR_HOST``: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    _probe_path = "/storage/v1/b"

    def _is_ours(self, status: int, headers: Mapping[str, str], body: bytes) -> bool:
        return status == 200 and b'"storage#buckets"' in body

    def _prepare(self) -> None:
        if self._python == sys.executable and importlib.util.find_spec("gcp_storage_emulator") is None:
            raise EmulatorError(
                f"gcp-storage-emulator is not installed in {sys.prefix}: "
                f"pip install 'gcp-storage-emulator=={GCS_EMULATOR_VERSION}' (or cloudqueue's dev extra)"
            )

    def _command(self, port: int, workdir: Path) -> Sequence[str]:
        return [
            self._python, "-m", "gcp_storage_emulator",
            "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
        ]
