"""``cloudqueue asyncapi``, run through its installed entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLOUDQUEUE = Path(sys.executable).parent / "cloudqueue"


def _cloudqueue(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLOUDQUEUE), *argv], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_module_without_an_app_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "notanapp.py").write_text("app = 42\n")
    done = _cloudqueue("asyncapi", "notanapp:app", cwd=tmp_path)
    assert done.returncode == 1
    assert "notanapp:app is not a cloudqueue.worker.App" in done.stderr
    assert done.stdout == ""


def test_a_missing_module_is_refused_by_name(tmp_path: Path) -> None:
    done = _cloudqueue("asyncapi", "nosuchmodule:app", "-o", str(tmp_path / "out.json"), cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot import 'nosuchmodule': no such module" in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_the_command_is_listed_in_the_help(tmp_path: Path) -> None:
    done = _cloudqueue("--help", cwd=tmp_path)
    assert done.returncode == 0 and "asyncapi" in done.stdout
