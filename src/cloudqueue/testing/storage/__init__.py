"""Object-storage emulators for the payload-store tests, as host processes on 127.0.0.1.

- :class:`Azurite`: Azure Blob Storage (npm ``azurite``, installed on first use into a cache
  folder; ``python -m cloudqueue.testing.storage install-azurite`` does it ahead of time).
- :class:`GcsEmulator`: Google Cloud Storage (PyPI ``gcp-storage-emulator``).
- S3 is served by LocalStack, the SQS plugin's runner: ``cloudqueue_sqs.testing.LocalStack``.

Each is a context manager; a failed start raises :class:`EmulatorError` with the tail of
the emulator's log, and leaves nothing running.
"""

from ._azurite import AZURITE_ACCOUNT, AZURITE_KEY, AZURITE_VERSION, Azurite, azurite_dir, install_azurite
from ._gcs import GCS_EMULATOR_VERSION, GcsEmulator
from ._process import EmulatorError, free_loopback_port

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AZURITE_VERSION",
    "GCS_EMULATOR_VERSION",
    "Azurite",
    "EmulatorError",
    "GcsEmulator",
    "azurite_dir",
    "free_loopback_port",
    "install_azurite",
]
