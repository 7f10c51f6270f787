"""A throw-away self-signed certificate for LocalStack's gateway.

LocalStack serves HTTP and HTTPS on the same port and wants a certificate at start-up. Left to
itself it downloads one (impossible offline) and then generates one with pyOpenSSL, which crashes
with pyOpenSSL 26. Handing it a ready PEM through ``CUSTOM_SSL_CERT_PATH`` avoids both.

The key is made by the LocalStack venv's own interpreter running :mod:`cloudqueue.testing.certs` by
path, with the ``cryptography`` package LocalStack always depends on: this keeps ``cryptography``
out of ``cloudqueue-sqs``'s dependencies and needs no ``openssl`` binary on the machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cloudqueue.testing import certs

from ._errors import LocalStackStartError


def write_self_signed_pem(python: str | os.PathLike[str], target: Path) -> Path:
    """Write a private key and a self-signed certificate for localhost into one PEM file.

    LocalStack splits that file into ``<target>.key`` and ``<target>.crt`` beside it, so the
    folder must be writable.
    """
    result = subprocess.run(
        [str(python), certs.__file__, str(target)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise LocalStackStartError(
            f"could not create a self-signed certificate with {python}:\n{result.stderr.strip()}"
        )
    return target
