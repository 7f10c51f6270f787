"""The storage emulators' runners (cloudqueue.testing.storage): they serve on loopback, say why
when they cannot start, and leave nothing running after stop."""

from __future__ import annotations

import os
import socket
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudqueue.testing.storage import AZURITE_KEY, Azurite, EmulatorError, GcsEmulator


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 something else already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("runner", [Azurite, GcsEmulator])
def test_serves_on_loopback_and_stops_its_process(runner: type[Azurite] | type[GcsEmulator]) -> None:
    server = runner()
    with server:
        pid = server.pid
        assert pid is not None and server.is_alive()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    assert not _process_exists(pid)  # stop() waited for it
    assert server.pid is None
    with pytest.raises(EmulatorError, match="not started"):
        _ = server.port


@pytest.mark.parametrize("runner", [Azurite, GcsEmulator])
def test_a_taken_port_is_refused_at_once(
    runner: type[Azurite] | type[GcsEmulator], taken_port: int
) -> None:
    server = runner(port=taken_port)
    with pytest.raises(EmulatorError, match=f"127.0.0.1:{taken_port} is already in use"):
        server.start()
    assert server.pid is None  # nothing left running


def test_an_emulator_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    # An interpreter without the emulator installed: the process exits with Python's own words.
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    server = GcsEmulator(python=bare / "bin" / "python")
    with pytest.raises(EmulatorError) as info:
        server.start()
    message = str(info.value)
    assert "gcp-storage-emulator exited with code 1 before it was ready" in message
    assert "log (last" in message and "No module named gcp_storage_emulator" in message
    assert server.pid is None


def test_azurite_reprs_never_show_the_account_key() -> None:
    with Azurite() as server:
        assert AZURITE_KEY in server.connection_string
        assert AZURITE_KEY not in repr(server) and AZURITE_KEY not in str(server)
        assert repr(server) == f"Azurite(127.0.0.1:{server.port})"
