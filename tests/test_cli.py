"""The cloudqueue command: in-process through main(argv), and as a real subprocess."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue.cli import COMMANDS, main
from cloudqueue.cli._common import DEFAULT_URL_TEMPLATE, ENV_URL
from cloudqueue.testing.contract import unique_name

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = unique_name("cli")
    if request.param == "memory":
        return f"memory://{name}"
    return f"sqlite:///{tmp_path}/cli.db?queue={name}"


def received(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_send_then_receive_with_ack_prints_json_lines_and_settles(run: Run, url: str) -> None:
    code, out, _ = run("send", "--url", url, "héllo", "--attribute", "kind=created", "-a", "n=1")
    assert code == 0
    message_id = out.strip()
    assert message_id

    code, out, _ = run("receive", "--url", url, "-n", "5", "--wait", "2", "--ack", "--json")
    assert code == 0
    [message] = received(out)
    assert message["id"] == message_id
    assert message["body"] == "héllo" and message["base64"] is False
    assert message["attributes"] == {"kind": "created", "n": "1"}
    assert message["delivery_attempt"] == 1
    assert isinstance(message["enqueued_at"], str) and "T" in message["enqueued_at"]

    code, out, _ = run("receive", "--url", url, "--wait", "0.3", "--json")
    assert (code, out) == (0, "")


def test_receive_without_ack_hands_the_message_back(run: Run, url: str) -> None:
    run("send", "--url", url, "again")
    code, out, _ = run("receive", "--url", url, "--wait", "2")
    assert code == 0 and "attempt=1" in out and "'again'" in out
    code, out, _ = run("receive", "--url", url, "--wait", "2", "--json", "--ack")
    assert [m["delivery_attempt"] for m in received(out)] == [2]


def test_binary_file_body_comes_back_as_base64(run: Run, url: str, tmp_path: Path) -> None:
    payload = bytes(range(256))
    (tmp_path / "body.bin").write_bytes(payload)
    assert run("send", "--url", url, "--file", str(tmp_path / "body.bin"))[0] == 0
    _, out, _ = run("receive", "--url", url, "--json", "--ack", "--wait", "2")
    [message] = received(out)
    assert message["base64"] is True
    assert base64.b64decode(str(message["body"])) == payload


def test_body_from_stdin(run: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from a pipe\n")))
    assert run("send", "--url", url)[0] == 0
    _, out, _ = run("receive", "--url", url, "--json", "--ack", "--wait", "2")
    assert [m["body"] for m in received(out)] == ["from a pipe\n"]


def test_count_sends_copies_with_a_progress_bar_on_stderr(run: Run, url: str) -> None:
    code, out, err = run("send", "--url", url, "--count", "1250", "copy")
    assert code == 0
    assert "sent 1250 messages" in out
    assert "1250/1250" in err and "100%" in err and "#" * 30 in err
    _, out, _ = run("receive", "--url", url, "-n", "2000", "--ack", "--json", "--wait", "2")
    bodies = [m["body"] for m in received(out)]
    assert bodies == ["copy"] * 1250


def test_declare_dead_letters_after_n_deliveries(run: Run, url: str) -> None:
    code, out, _ = run("declare", url, "--dead-letter-after", "1", "--lease", "5")
    dead_url = cloudqueue.dead_letter_url(url)
    assert code == 0
    assert out.splitlines() == [f"declared {url}", f"dead letters: {dead_url}"]
    run("send", "--url", url, "poison")
    run("receive", "--url", url, "--wait", "2")  # handed back: its first and last attempt
    assert run("receive", "--url", url, "--wait", "0.3")[1] == ""
    _, out, _ = run("receive", "--url", dead_url, "--json", "--ack", "--wait", "2")
    assert [m["body"] for m in received(out)] == ["poison"]


def test_purge_empties_the_queue(run: Run, url: str) -> None:
    run("send", "--url", url, "--count", "3", "x")
    code, out, _ = run("purge", url)
    assert (code, out.strip()) == (0, f"purged {url}")
    assert run("receive", "--url", url, "--wait", "0.3")[1] == ""


def test_providers_lists_schemes_and_capabilities(run: Run) -> None:
    code, out, _ = run("providers", "--json")
    assert code == 0
    listing = json.loads(out)
    schemes = {s for row in listing["installed"] for s in row["schemes"]}
    assert {"memory", "sqlite"} <= schemes
    assert all(row["distribution"] for row in listing["installed"])

    code, out, _ = run("providers", "--url", "memory://anything", "--json")
    shown = json.loads(out)
    assert shown["capabilities"]["fan_out"] is True
    assert shown["capabilities"]["limits"]["max_message_bytes"] == 4 * 1024 * 1024

    code, out, _ = run("providers", "--url", "memory://anything")
    assert code == 0 and "max_send_batch" in out and "dead_letter" in out


def test_env_variable_picks_the_backend(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"memory://{unique_name('env')}"
    monkeypatch.setenv(ENV_URL, url)
    run("send", "from env")
    with cloudqueue.open_consumer(url) as consumer:
        [message] = consumer.receive(wait=2)
        assert message.body == b"from env"
        message.ack()


def test_default_is_sqlite_in_the_current_directory(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    assert run("send", "to the default")[0] == 0
    assert (tmp_path / "cloudqueue.db").exists()
    _, out, _ = run("receive", "--json", "--ack", "--wait", "2")
    assert [m["body"] for m in received(out)] == ["to the default"]
    assert DEFAULT_URL_TEMPLATE.startswith("sqlite:///cloudqueue.db?queue=")


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["send", "--url", "nosuch://q", "x"], 1, "no provider for URL scheme 'nosuch'"),
        (["send", "--url", "memory://q?colour=red", "x"], 1, "unknown URL parameter 'colour'"),
        (["receive", "--url", "orders"], 1, "malformed destination URL"),
        (["send", "--url", "memory://q", "-a", "novalue", "x"], 2, "'novalue' is not NAME=VALUE"),
        (["send", "--url", "memory://q", "-a", "a=1", "-a", "a=2", "x"], 2, "given twice"),
        (["send", "--url", "memory://q", "--count", "0", "x"], 2, "must be at least 1"),
        (["send", "--url", "memory://q", "--file", "/nonexistent/f", "x"], 2, "not both"),
        (["send", "--url", "memory://q", "--file", "/nonexistent/f"], 1, "/nonexistent/f"),
        (["receive", "--url", "memory://q", "--wait", "soon"], 2, "not a number"),
        (["declare", "memory://q", "--dead-letter-after", "-1"], 2, "at least 1"),
        (["declare", "memory://a", "--url", "memory://b"], 2, "give the URL once"),
        (["launch"], 2, "invalid choice: 'launch'"),
    ],
)
def test_bad_input_is_one_line_on_stderr(run: Run, argv: list[str], code: int, says: str) -> None:
    got, out, err = run(*argv)
    assert got == code
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert says in err and "error:" in err and "Traceback" not in err


def test_secrets_in_urls_are_never_printed(run: Run) -> None:
    secret = "hunter2-s3cret-pw"
    name = unique_name("secret")
    code, out, err = run("declare", f"memory://user:{secret}@{name}")
    assert code == 0 and "user:***@" in out
    code, out, err = run("send", "--url", f"memory://user:{secret}@{name}?bad=1", "x")
    assert code == 1
    assert secret not in out + err


def test_every_command_is_registered_once() -> None:
    names = [command.NAME for command in COMMANDS]
    assert {"providers", "declare", "send", "receive", "purge", "demo"} <= set(names)
    assert len(set(names)) == len(names)


def _cli(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudqueue", *argv],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120,
    )


def test_subprocesses_share_the_sqlite_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db?queue=jobs"
    sent = _cli("send", "--url", url, "across processes", "-a", "k=v", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    got = _cli("receive", "--json", "--ack", cwd=tmp_path, env={ENV_URL: url})
    assert got.returncode == 0, got.stderr
    [message] = received(got.stdout)
    assert message["id"] == sent.stdout.strip()
    assert (message["body"], message["attributes"]) == ("across processes", {"k": "v"})


def test_subprocess_reports_errors_in_one_line(tmp_path: Path) -> None:
    done = _cli("purge", "nosuch://queue", cwd=tmp_path)
    assert done.returncode == 1
    # Only the error line is ours; a warning logged by the registry about a broken
    # plugin elsewhere in the environment may precede it.
    [error] = [line for line in done.stderr.splitlines() if "error:" in line]
    assert error.startswith("cloudqueue: error: NotFound: ") and "'nosuch'" in error
    assert "Traceback" not in done.stderr
