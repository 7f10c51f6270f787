"""Clear errors for bad files, paths and URLs, raised before anything is sent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import cloudqueue


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        cloudqueue.open_producer(f"sqlite:///{path}?queue=q")
    assert str(path) in str(info.value) and "not a SQLite database" in str(info.value)


def test_a_corrupt_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    url = f"sqlite:///{path}?queue=q"
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(b"x" * 1000) for _ in range(200)])
    # Closed: this process holds no connection that could checkpoint its WAL back
    # over the damage below; the last close copied the WAL in and removed it.
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    data = bytearray(path.read_bytes())
    data[100 : 4096 * 3] = b"\xff" * (4096 * 3 - 100)  # keep the header, wreck the first pages
    path.write_bytes(bytes(data))
    script = (
        "import cloudqueue, sys\n"
        "try:\n"
        f"    cloudqueue.open_producer({url!r}).send(b'y')\n"
        "except cloudqueue.QueueError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("FailedPrecondition "), out
    assert f"SQLite database {str(path)!r} is corrupt" in out.stdout, out
    # The same here, in the process that wrote the file: it opens the file afresh.
    with pytest.raises(cloudqueue.FailedPrecondition) as info:
        cloudqueue.open_producer(url)
    assert f"SQLite database {str(path)!r} is corrupt" in str(info.value)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(cloudqueue.FailedPrecondition) as info:
        cloudqueue.open_consumer(f"sqlite:///{missing}/q.db?queue=q")
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert not missing.exists()


def test_a_directory_given_as_the_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match="is a directory"):
        cloudqueue.open_producer(f"sqlite:///{tmp_path}?queue=q")


def _open_error(path: Path | str) -> str:
    try:
        cloudqueue.open_producer(f"sqlite:///{path}?queue=q").send(b"y")
    except cloudqueue.QueueError as error:
        return f"{type(error).__name__} {error}"
    return "no error"


def test_an_unwritable_directory_is_permission_denied(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root ignores modes; /proc takes no new files even from root
        path: Path | str = "/proc/q.db"
    else:
        directory = tmp_path / "ro"
        directory.mkdir(mode=0o555)
        path = directory / "q.db"
    found = _open_error(path)
    assert found.startswith("PermissionDenied") and str(path) in found, found


#: The unprivileged user the read-only case runs as when the tests run as root.
NOBODY = 65534

_AS_NOBODY = """
import os, sys, tempfile, cloudqueue
# Python lives where nobody may not read: run every lazy import as root first.
warm = tempfile.mkdtemp()
cloudqueue.open_producer(f"sqlite:///{warm}/warm.db?queue=q").send(b"w")
os.setgroups([])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[2]))
try:
    cloudqueue.open_producer(f"sqlite:///{sys.argv[1]}?queue=q").send(b"y")
except cloudqueue.QueueError as error:
    print(type(error).__name__, error)
else:
    print("no error")
"""


def test_a_read_only_file_is_permission_denied(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        path = tmp_path / "q.db"
        with cloudqueue.open_producer(f"sqlite:///{path}?queue=q") as producer:
            producer.send(b"x")
        path.chmod(0o444)
        found = _open_error(path)
    else:
        # Root may write any file, so a read-only file only exists for other users:
        # hand the file to nobody and open it as nobody (pytest's tmp_path is private
        # to root, hence a directory of nobody's own under the shared temp directory).
        directory = Path(tempfile.mkdtemp(prefix="cloudqueue-readonly-"))
        try:
            path = directory / "q.db"
            with cloudqueue.open_producer(f"sqlite:///{path}?queue=q") as producer:
                producer.send(b"x")
            for owned in (directory, *directory.iterdir()):
                os.chown(owned, NOBODY, NOBODY)
            path.chmod(0o444)
            out = subprocess.run(
                [sys.executable, "-c", _AS_NOBODY, str(path), str(NOBODY)],
                capture_output=True, text=True, timeout=60,
            )
            found = out.stdout.strip() or out.stderr
        finally:
            shutil.rmtree(directory)
    assert found.startswith("PermissionDenied") and str(path) in found, found
    assert "not readable and writable" in found, found


def test_url_mistakes_are_explained(tmp_path: Path) -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"\?queue=<name>"):
        cloudqueue.open_producer(f"sqlite:///{tmp_path}/q.db")
    with pytest.raises(cloudqueue.InvalidArgument, match="no host"):
        cloudqueue.open_producer("sqlite://q.db?queue=q")
    with pytest.raises(cloudqueue.InvalidArgument, match="synchronous"):
        cloudqueue.open_producer(f"sqlite:///{tmp_path}/q.db?queue=q&synchronous=sometimes")
    with pytest.raises(cloudqueue.InvalidArgument, match="busy_timeout"):
        cloudqueue.open_producer(f"sqlite:///{tmp_path}/q.db?queue=q&busy_timeout=-1")
    with pytest.raises(cloudqueue.InvalidArgument, match="journal"):
        cloudqueue.open_producer(f"sqlite:///{tmp_path}/q.db?queue=q&journal=delete")


def test_the_default_relative_url_and_options_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///cloudqueue.db?queue=demo&synchronous=full&busy_timeout=2"
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"hello")
    assert (tmp_path / "cloudqueue.db").exists()
    with cloudqueue.open_consumer("sqlite:///cloudqueue.db?queue=demo") as consumer:
        (message,) = consumer.receive(max_messages=1, wait=5)
        message.ack()
    assert message.body == b"hello"
    assert cloudqueue.dead_letter_url(url).startswith("sqlite:///cloudqueue.db?queue=demo-dlq")
