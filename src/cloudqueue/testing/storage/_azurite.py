"""Azurite (Azure Storage's emulator, npm package ``azurite``), blob service only, on 127.0.0.1.

Installed with ``npm install --prefix <dir>`` into a cache folder on first use (pinned
version, file-locked so parallel test sessions install once), run with ``node`` as a
host process, data in memory. What it still approximates, as Azurite itself does:
one account, the well-known development account and key (no Microsoft Entra ID
tokens: ``DefaultAzureCredential`` cannot be exercised against it), API-version
checks skipped, and no service-side limits on throughput.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..hostprocess import file_lock
from ._process import EmulatorError, EmulatorProcess, run_checked

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AZURITE_VERSION",
    "Azurite",
    "azurite_dir",
    "install_azurite",
]

AZURITE_VERSION = "3.35.0"
"""The pinned release: 3.36 and later declare Node >= 21/22, and the machines we test on have
Node 20 (the Node this release's own dependencies need at least)."""

AZURITE_ACCOUNT = "devstoreaccount1"
#: Azurite's fixed development key, published in Azure's docs. Public, yet tests treat it
#: as a secret: it is what a real account key looks like to the code under test.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

DIR_ENV = "CLOUDQUEUE_AZURITE_DIR"
"""Where Azurite is installed (default ``$XDG_CACHE_HOME/cloudqueue/azurite-<version>``)."""

_MAIN = Path("node_modules", "azurite", "dist", "src", "blob", "main.js")
_MARKER = ".cloudqueue-azurite.json"


def azurite_dir() -> Path:
    """The install folder: ``$CLOUDQUEUE_AZURITE_DIR`` or a versioned folder of the user's cache."""
    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured).absolute()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cloudqueue" / f"azurite-{AZURITE_VERSION}"


def is_installed(directory: Path) -> bool:
    """True when ``directory`` holds the pinned Azurite, completely installed."""
    try:
        marker = json.loads((directory / _MARKER).read_text(encoding="utf-8"))
        package = json.loads(
            (directory / "node_modules" / "azurite" / "package.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return False
    return (
        marker.get("version") == AZURITE_VERSION
        and package.get("version") == AZURITE_VERSION
        and (directory / _MAIN).is_file()
    )


def install_azurite(directory: str | os.PathLike[str] | None = None, *, quiet: bool = True) -> Path:
    """Install the pinned Azurite with npm into ``directory`` (idempotent); returns the folder."""
    target = Path(directory).absolute() if directory is not None else azurite_dir()
    if is_installed(target):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise EmulatorError("installing Azurite needs npm (Debian: apt-get install nodejs npm)")
    target.mkdir(parents=True, exist_ok=True)
    with file_lock(target / ".lock"):
        if is_installed(target):  # another process finished while this one waited
            return target
        (target / _MARKER).unlink(missing_ok=True)
        command = [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", "--omit=dev"]
        if quiet:
            command.append("--silent")
        run_checked(
            [*command, f"azurite@{AZURITE_VERSION}"], what="installing Azurite", on_error=EmulatorError
        )
        partial = target / (_MARKER + ".tmp")
        partial.write_text(json.dumps({"version": AZURITE_VERSION}), encoding="utf-8")
        partial.replace(target / _MARKER)  # the marker is either absent or complete
    if not is_installed(target):
        raise EmulatorError(f"npm finished but {target} does not hold azurite {AZURITE_VERSION}")
    return target


class Azurite(EmulatorProcess):
    """Azurite's blob service on ``127.0.0.1`` for tests, data in memory::

        with Azurite() as azurite:
            client = BlobServiceClient.from_connection_string(azurite.connection_string)

    The first start installs Azurite (see :func:`install_azurite`) unless ``directory``
    already holds it.
    """

    name = "Azurite"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        start_timeout: float = 60.0,
        stop_grace: float = 5.0,
    ) -> None:
        super().__init__(port=port, start_timeout=start_timeout, stop_grace=stop_grace)
        self._directory = Path(directory).absolute() if directory is not None else None

    @property
    def blob_endpoint(self) -> str:
        """``http://127.0.0.1:PORT/devstoreaccount1`` (path-style: the account is the first segment)."""
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """The development account's connection string for this server (it holds the key)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_endpoint};"
        )

    _probe_path = f"/{AZURITE_ACCOUNT}?restype=service&comp=properties"

    def _is_ours(self, status: int, headers: Mapping[str, str], body: bytes) -> bool:
        # Unsigned, so refused (403), but in Azurite's name.
        return str(headers.get("Server", "")).startswith("Azurite-Blob/")

    def _prepare(self) -> None:
        if shutil.which("node") is None:
            raise EmulatorError("Azurite needs Node.js >= 20 on PATH (Debian 13: apt-get install nodejs)")
        self._directory = install_azurite(self._directory)

    def _command(self, port: int, workdir: Path) -> Sequence[str]:
        assert self._directory is not None
        return [
            "node",
            str(self._directory / _MAIN),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--inMemoryPersistence",  # (with it, Azurite refuses --location; cwd is the temp folder)
            "--skipApiVersionCheck",  # the Python SDK may be newer than this Azurite
            "--loose",
            "--disableTelemetry",
            "--silent",
        ]

    def _environment(self) -> Mapping[str, str]:
        # Azurite reads its account list from AZURITE_ACCOUNTS: unset, it serves the dev account.
        return {"AZURITE_ACCOUNTS": ""} if "AZURITE_ACCOUNTS" in os.environ else {}
