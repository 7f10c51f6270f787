"""Install LocalStack into its own virtual environment.

LocalStack pins its own boto3/botocore (and many other packages), so it never goes into the
environment that runs the tests: it gets a separate venv, and the runner starts that venv's
interpreter as a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cloudqueue.testing.hostprocess import file_lock

from ._errors import LocalStackInstallError

LOCALSTACK_VERSION = "4.12.0"
"""The LocalStack release the runner is tested with."""

LOCALSTACK_REQUIREMENTS: tuple[str, ...] = (
    # 4.12.0 is the last release that runs on Python 3.11; later ones use 3.12-only syntax.
    # "base-runtime" brings the gateway servers (hypercorn, Twisted) needed to serve requests.
    f"localstack-core[base-runtime]=={LOCALSTACK_VERSION}",
    # cbor2 6 removed a module that localstack-core 4.12 imports at start-up.
    "cbor2<6",
    # The Twisted gateway imports service_identity; base-runtime does not pull it in.
    "service_identity",
    # psutil 7.2 removed psutil._common.snicaddr, which LocalStack's DNS module imports: the
    # server still runs (DNS stays off with DNS_ADDRESS=0), but logs a misleading "Unable to
    # start DNS" warning at every start and stop. The pin keeps the log clean.
    "psutil<7.2",
    # SNS and STS (the topics of cloudqueue_sqs.sns, and the account id in a topic ARN) are
    # served by LocalStack through moto, which base-runtime leaves out; moto-ext is
    # LocalStack's own build of it (the "runtime" extra would pull every service's deps).
    "moto-ext==5.1.54",
)
"""What :func:`install_localstack` installs, with the reason for each pin."""

_MARKER = ".cloudqueue-localstack.json"
_LOCK = ".cloudqueue-localstack.lock"


def venv_python(venv_dir: str | os.PathLike[str]) -> Path:
    """Return the interpreter of the virtual environment at ``venv_dir``."""
    venv = Path(venv_dir)
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def is_installed(venv_dir: str | os.PathLike[str]) -> bool:
    """Tell whether ``venv_dir`` holds exactly the LocalStack this module installs.

    Checks the marker written after a successful install (so a half-finished install does not
    count) and asks the venv's own interpreter for the installed ``localstack-core`` version (so
    a venv changed by hand afterwards does not count either).
    """
    venv = Path(venv_dir)
    python = venv_python(venv)
    try:
        marker = json.loads((venv / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("requirements") != list(LOCALSTACK_REQUIREMENTS) or not python.exists():
        return False
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('localstack-core'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == LOCALSTACK_VERSION


def install_localstack(
    venv_dir: str | os.PathLike[str],
    *,
    python: str | os.PathLike[str] | None = None,
    quiet: bool = True,
    extra_pip_args: Sequence[str] = (),
) -> Path:
    """Create a virtual environment at ``venv_dir`` and install LocalStack into it.

    Idempotent: returns at once when the venv already holds :data:`LOCALSTACK_REQUIREMENTS`.
    Safe to call from several processes at the same time (for example pytest-xdist workers):
    a file lock inside the venv serialises them, and the second one finds the work done.

    Args:
        venv_dir: where the venv goes; created if missing. An existing venv is reused.
        python: the interpreter that creates the venv (default: the running one). LocalStack
            4.12 declares Python >= 3.10; it is tested here on 3.11.
        quiet: hide pip's output (it is still included in the error when pip fails).
        extra_pip_args: passed to ``pip install``, e.g. ``["--no-cache-dir"]``.

    Returns:
        The venv's interpreter, the one to start LocalStack with.

    Raises:
        LocalStackInstallError: the venv could not be created or pip failed.
    """
    venv = Path(venv_dir).absolute()
    if is_installed(venv):
        return venv_python(venv)
    venv.mkdir(parents=True, exist_ok=True)
    with file_lock(venv / _LOCK):
        # Another process may have finished the install while this one waited for the lock.
        if is_installed(venv):
            return venv_python(venv)
        (venv / _MARKER).unlink(missing_ok=True)
        base = str(python) if python is not None else sys.executable
        # On an existing venv this only refreshes the scripts: a half-done install is resumed.
        _run([base, "-m", "venv", str(venv)], quiet=quiet, what="creating the venv")
        pip = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check"]
        if quiet:
            pip.append("--quiet")
        _run(
            [*pip, *extra_pip_args, *LOCALSTACK_REQUIREMENTS],
            quiet=quiet,
            what="installing LocalStack",
        )
        marker = {"requirements": list(LOCALSTACK_REQUIREMENTS)}
        tmp = venv / (_MARKER + ".tmp")
        tmp.write_text(json.dumps(marker), encoding="utf-8")
        tmp.replace(venv / _MARKER)  # atomic: the marker is either absent or complete
    if not is_installed(venv):
        raise LocalStackInstallError(
            f"pip finished but {venv} does not hold localstack-core {LOCALSTACK_VERSION}"
        )
    return venv_python(venv)


def _run(command: list[str], *, quiet: bool, what: str) -> None:
    # PYTHONPATH/PYTHONHOME of the calling environment must not leak into the new venv's pip.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    # Quiet: capture the output for the error message. Otherwise let it go to the terminal.
    capture = subprocess.PIPE if quiet else None
    result = subprocess.run(
        command,
        env=env,
        stdout=capture,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout or ""
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise LocalStackInstallError(
            f"{what} failed (exit code {result.returncode}): {' '.join(command)}"
            + (f"\n--- output (last 40 lines) ---\n{tail}" if tail else "")
        )
