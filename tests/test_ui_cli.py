"""``cloudqueue ui``: through its entry point as a real server (subprocess, HTTP GET), and
the token decision for hosts beyond loopback (in-process, nothing bound)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import cloudqueue
from cloudqueue.cli import main
from cloudqueue.ui import _serve, read_config

CLOUDQUEUE = Path(sys.executable).with_name("cloudqueue")
#: Bound for the server to start (slow CI machines); the test waits for its line.
START = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_command_serves_the_console(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}?queue=demo-orders"
    cloudqueue.declare(url, dead_letter_after=3)
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"waiting")
    config = tmp_path / "console.txt"
    config.write_text(f"# the demo's queue\n\n{url}\n", encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [str(CLOUDQUEUE), "ui", "--config", str(config), "--port", str(port), "--read-only"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket listens
        assert line == f"cloudqueue ui: serving 1 destination on http://127.0.0.1:{port}/\n"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=START)
        assert page.status_code == 200
        assert 'data-destination="0"' in page.text and ">demo-orders</a>" in page.text
        assert 'data-read-only="true"' in page.text
        stats = httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=START).json()
        assert stats["destinations"][0]["stats"]["available"] == 1
    finally:
        server.terminate()
        server.communicate(timeout=START)


def test_the_command_refuses_to_start_without_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--port", "8025"]) == 2
    assert "give at least one destination URL, or --config FILE" in capsys.readouterr().err
    assert main(["ui", "memory://x", "--port", "70000"]) == 2
    assert "must be a port number (1 to 65535), not 70000" in capsys.readouterr().err


def test_config_files_list_urls_one_per_line(tmp_path: Path) -> None:
    config = tmp_path / "c.txt"
    config.write_text("memory://a\n  # comment\n\n  memory://b  \n", encoding="utf-8")
    assert read_config(config) == ["memory://a", "memory://b"]


class _Captured:
    app: Starlette | None = None
    host: str | None = None


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> _Captured:
    """``serve`` records what it was given instead of binding a socket."""
    seen = _Captured()

    def record(app: Starlette, host: str, port: int, ready: str) -> bool:
        seen.app, seen.host = app, host
        print(ready)
        return True

    monkeypatch.setattr(_serve, "serve", record)
    return seen


def test_beyond_loopback_a_token_is_generated_printed_and_required(
    captured: _Captured, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDQUEUE_UI_TOKEN", raising=False)
    assert main(["ui", "memory://orders", "--host", "192.0.2.10", "--port", "8025"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("cloudqueue ui: token: ")
    token = out[0].removeprefix("cloudqueue ui: token: ")
    assert len(token) >= 16
    assert out[1] == f"cloudqueue ui: serving 1 destination on http://192.0.2.10:8025/?token={token}"
    assert captured.app is not None and captured.host == "192.0.2.10"
    with TestClient(captured.app, base_url="http://192.0.2.10:8025") as http:
        assert http.get("/").status_code == 401
        assert http.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200


def test_beyond_loopback_the_environment_token_is_used_and_not_printed(
    captured: _Captured, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "from-the-environment-0123"
    monkeypatch.setenv("CLOUDQUEUE_UI_TOKEN", token)
    assert main(["ui", "memory://orders", "--host", "0.0.0.0", "--port", "8025"]) == 0
    out = capsys.readouterr().out
    assert token not in out
    assert captured.app is not None
    with TestClient(captured.app, base_url="http://192.0.2.10:8025") as http:
        assert http.get("/").status_code == 401
        assert http.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200


def test_on_loopback_no_token_is_needed(captured: _Captured, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "memory://orders", "--port", "8025"]) == 0
    assert "token" not in capsys.readouterr().out
    assert captured.app is not None and captured.host == "127.0.0.1"
    with TestClient(captured.app, base_url="http://127.0.0.1:8025") as http:
        assert http.get("/").status_code == 200


def test_the_core_does_not_import_the_console() -> None:
    code = (
        "import sys, cloudqueue, cloudqueue.cli\n"
        "print(sorted({'starlette', 'uvicorn', 'jinja2', 'cloudqueue.ui'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
