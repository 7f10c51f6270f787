"""The operators' commands (stats, peek, dlq, redrive) through the real ``cloudqueue``
entry point, as subprocesses, on SQLite files (durable across processes)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue.testing.contract import unique_name
from cloudqueue.wire import REDRIVE_DELIVERY_COUNT, REDRIVE_ORIGINAL_ID, REDRIVE_REASON, REDRIVE_TIME

CLOUDQUEUE = str(Path(sys.executable).with_name("cloudqueue"))
#: Generous bound for a subprocess or a condition the test waits for (slow CI machines).
WAIT = 60.0

Cli = Callable[..., subprocess.CompletedProcess[str]]


def cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLOUDQUEUE, *argv], input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=WAIT,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    source = f"sqlite:///{tmp_path}/ops.db?queue={unique_name('cli')}"
    cloudqueue.declare(source, dead_letter_after=1)
    return source


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def send(url: str, messages: list[cloudqueue.Message]) -> list[str]:
    with cloudqueue.open_producer(url) as producer:
        return producer.send_batch(messages)


def dead_letter(url: str, count: int, reason: str) -> list[str]:
    """Receive ``count`` messages of ``url`` and dead-letter them; their ids."""
    ids: list[str] = []
    with cloudqueue.open_consumer(url, max_in_flight=max(count, 1)) as consumer:
        while len(ids) < count:
            for message in consumer.receive(max_messages=count - len(ids), wait=5):
                message.dead_letter(reason)
                ids.append(message.id)
    return ids


def drain(url: str) -> list[cloudqueue.ReceivedMessage]:
    """Everything ``url`` holds, acked."""
    got: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(url, max_in_flight=1000) as consumer:
        while batch := consumer.receive(max_messages=500, wait=1.0):
            for message in batch:
                message.ack()
            got += batch
    return got


def table_rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:]]


# -- stats ----------------------------------------------------------------------------------


def test_stats_reflects_sends_receives_delays_and_dead_letters(url: str) -> None:
    send(url, [cloudqueue.Message(f"m{n}") for n in range(6)] + [cloudqueue.Message("later", delay=600)])
    dead_letter(url, 1, "broken")
    with cloudqueue.open_consumer(url, max_in_flight=2) as consumer:
        held = consumer.receive(max_messages=2, wait=5)
        assert len(held) == 2
        done = cli("stats", url, "--json")
        table = cli("stats", url)
        for message in held:
            message.nack()
    assert done.returncode == 0, done.stderr
    [shown] = json_lines(done.stdout)
    assert shown["url"] == url
    assert (shown["available"], shown["in_flight"], shown["delayed"], shown["dead_letters"]) == (3, 2, 1, 1)
    assert shown["exact"] is True
    assert shown["total_sent"] == 7
    assert isinstance(shown["oldest_age"], float) and shown["oldest_age"] >= 0

    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == [
        "URL", "AVAILABLE", "IN", "FLIGHT", "DELAYED", "DEAD", "LETTERS", "OLDEST", "COUNTS"
    ]
    assert row.split()[:5] == [url, "3", "2", "1", "1"]
    assert row.split()[-1] == "exact"


def test_stats_of_several_urls_shows_each_error_in_its_row(url: str) -> None:
    send(url, [cloudqueue.Message("one")])
    secret = "hunter2-s3cret"
    broken = f"memory://user:{secret}@q?colour=red"
    done = cli("stats", url, broken, "--json")
    assert done.returncode == 1
    good, bad = json_lines(done.stdout)
    assert good["available"] == 1
    assert "unknown URL parameter 'colour'" in str(bad["error"])
    assert secret not in done.stdout + done.stderr

    table = cli("stats", broken, url)
    assert table.returncode == 1
    rows = table_rows(table.stdout)
    assert rows[1][:2] == [url, "1"]
    assert "InvalidArgument:" in table.stdout and secret not in table.stdout


# -- peek -----------------------------------------------------------------------------------


def test_peek_shows_messages_and_a_later_receive_gets_them_unchanged(url: str) -> None:
    long_text = "x" * 200
    ids = send(url, [
        cloudqueue.Message("first\nline", attributes={"kind": "a", "n": "1"}),
        cloudqueue.Message(bytes([0, 255, 7])),
        cloudqueue.Message(long_text),
    ])
    done = cli("peek", url, "-n", "10", "--json")
    assert done.returncode == 0, done.stderr
    peeked = json_lines(done.stdout)
    assert [m["id"] for m in peeked] == ids
    assert [(m["body"], m["base64"]) for m in peeked] == [
        ("first\nline", False), ("AP8H", True), (long_text, False)
    ]
    assert peeked[0]["attributes"] == {"kind": "a", "n": "1"}

    table = cli("peek", url, "-n", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "ATTEMPT", "AGE", "ORDERING", "KEY", "ATTRIBUTES", "BODY"]
    assert len(lines) == 3
    assert ids[0] in lines[1] and "kind=a n=1" in lines[1] and "first\\nline" in lines[1]
    assert "\\x00\\xff\\x07" in lines[2]

    def without_age(shown: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{name: value for name, value in m.items() if name != "age"} for m in shown]

    again = cli("peek", url, "-n", "10", "--json")
    assert without_age(json_lines(again.stdout)) == without_age(peeked)
    received = drain(url)
    assert [m.id for m in received] == ids
    assert [m.body for m in received] == [b"first\nline", bytes([0, 255, 7]), long_text.encode()]
    assert [m.delivery_attempt for m in received] == [1, 1, 1]


def test_peek_cuts_long_bodies_and_says_when_empty(url: str) -> None:
    send(url, [cloudqueue.Message("y" * 500)])
    done = cli("peek", url)
    assert "… (500 bytes)" in done.stdout and "y" * 100 not in done.stdout
    drain(url)
    empty = cli("peek", url)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "no messages waiting in" in empty.stderr


# -- dlq ------------------------------------------------------------------------------------


def test_dlq_lists_dead_letters_with_reason_attempts_and_body(url: str) -> None:
    send(url, [cloudqueue.Message(f"order {n}", attributes={"n": str(n)}) for n in range(3)])
    dead_ids = dead_letter(url, 2, "price missing")
    done = cli("dlq", url, "--json")
    assert done.returncode == 0, done.stderr
    shown = json_lines(done.stdout)
    assert sorted(str(m["body"]) for m in shown) == ["order 0", "order 1"]
    assert {m["reason"] for m in shown} == {"price missing"}
    assert {m["delivery_count"] for m in shown} == {1}
    assert all("dead_letter_reason" not in m["attributes"] for m in shown)  # type: ignore[operator]
    originals = {m["original_id"] or m["id"] for m in shown}
    assert originals == set(dead_ids)

    table = cli("dlq", url, "-n", "1")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "REASON", "ATTEMPTS", "AGE", "ATTRIBUTES", "BODY"]
    assert len(lines) == 2 and "price missing" in lines[1] and "order 0" in lines[1]
    # Reading dead letters settles nothing: the source still has its one message.
    assert [m.body for m in drain(url)] == [b"order 2"]


# -- redrive --------------------------------------------------------------------------------


def fill_dead_letters(url: str, count: int, attributes: Callable[[int], dict[str, str]]) -> None:
    send(url, [cloudqueue.Message(f"{n}", attributes=attributes(n)) for n in range(count)])
    dead_letter(url, count, "bug 42")


def test_redrive_refuses_without_a_terminal_or_yes_and_moves_nothing(url: str) -> None:
    fill_dead_letters(url, 3, lambda n: {})
    dlq = cloudqueue.dead_letter_url(url)
    done = cli("redrive", dlq)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "refusing to redrive without confirmation" in done.stderr and "--yes" in done.stderr
    assert len(drain(dlq)) == 3 and drain(url) == []


def test_redrive_dry_run_counts_and_moves_nothing(url: str) -> None:
    fill_dead_letters(url, 5, lambda n: {"kind": "a" if n < 2 else "b"})
    dlq = cloudqueue.dead_letter_url(url)
    done = cli("redrive", dlq, "--dry-run", "--where", "kind=a")
    assert done.returncode == 0, done.stderr
    assert "would move 2 dead letters" in done.stdout
    assert "skipped 3 not matching --where" in done.stdout
    assert drain(url) == []
    assert len(drain(dlq)) == 5


def test_redrive_where_and_limit_move_only_what_they_say_with_provenance(url: str) -> None:
    fill_dead_letters(url, 9, lambda n: {"kind": "a" if n % 3 == 0 else "b", "n": str(n)})
    dlq = cloudqueue.dead_letter_url(url)
    dead_ids = {m.id: m.text() for m in cloudqueue.ops.peek(dlq, 100)}

    done = cli("redrive", dlq, "--where", "kind=a", "--yes")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"moved 3 dead letters from {dlq} to {url}")
    assert lines[1:3] == ["skipped 6 not matching --where (left in the dead-letter queue)", "failed 0"]
    assert lines[3:] == ["by dead-letter reason:", "       3  bug 42"]
    moved = drain(url)
    assert sorted(m.text() for m in moved) == ["0", "3", "6"]
    for message in moved:
        assert message.attributes[REDRIVE_REASON] == "bug 42"
        assert dead_ids[message.attributes[REDRIVE_ORIGINAL_ID]] == message.text()
        assert message.attributes[REDRIVE_DELIVERY_COUNT] == "1"
        assert message.attributes[REDRIVE_TIME].endswith(("Z", "+00:00"))
        assert message.attributes["n"] == message.text() and message.attributes["kind"] == "a"

    limited = cli("redrive", dlq, "--limit", "4", "--yes", "--where", "kind=b", "--where", "kind=a")
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout.startswith("moved 4 dead letters")
    assert len(drain(url)) == 4
    assert len(drain(dlq)) == 2


def test_redrive_reports_refused_messages_and_exits_non_zero(url: str) -> None:
    # 98 attributes pass on their own; the 4 provenance attributes take them over SQLite's 100.
    crowded = {f"a{i}": "v" for i in range(98)}
    send(url, [cloudqueue.Message("crowded", attributes=crowded), cloudqueue.Message("fine")])
    dead_letter(url, 2, "")
    dlq = cloudqueue.dead_letter_url(url)
    done = cli("redrive", dlq, "--yes")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("moved 1 dead letters")
    assert lines[2] == "failed 1 (left in the dead-letter queue):"
    assert "100" in lines[3] and "attributes" in lines[3]
    assert lines[4:] == ["by dead-letter reason:", "       1  (unknown)"]
    assert [m.body for m in drain(url)] == [b"fine"]
    assert [m.body for m in drain(dlq)] == [b"crowded"]


def test_redrive_to_another_destination_leaves_the_source_alone(url: str, tmp_path: Path) -> None:
    fill_dead_letters(url, 3, lambda n: {"n": str(n)})
    dlq = cloudqueue.dead_letter_url(url)
    elsewhere = f"sqlite:///{tmp_path}/ops.db?queue={unique_name('fixed')}"
    done = cli("redrive", dlq, "--to", elsewhere, "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"moved 3 dead letters from {dlq} to {elsewhere}")
    assert sorted(m.text() for m in drain(elsewhere)) == ["0", "1", "2"]
    assert drain(url) == [] and drain(dlq) == []


def run_in_terminal(argv: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``cloudqueue`` with a pseudo-terminal as stdin and stderr, type ``answer``
    once it asks; return its exit code and what it wrote to the terminal."""
    master, slave = os.openpty()
    process = subprocess.Popen([CLOUDQUEUE, *argv], stdin=slave, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + WAIT
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 4096)
        os.write(master, answer)
        out, _ = process.communicate(timeout=WAIT)
        while select.select([master], [], [], 0.1)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.wait(), seen.decode(errors="replace") + out.decode()


def test_redrive_asks_on_a_terminal_and_does_what_the_answer_says(url: str) -> None:
    fill_dead_letters(url, 4, lambda n: {})
    dlq = cloudqueue.dead_letter_url(url)
    code, shown = run_in_terminal(["redrive", dlq], b"n\n")
    assert code == 1
    assert f"Move up to 4 dead letters from {dlq} to {url}? [y/N]" in shown
    assert "not confirmed: nothing was moved" in shown
    assert drain(url) == []

    code, shown = run_in_terminal(["redrive", dlq, "--rate", "500"], b"y\n")
    assert code == 0, shown
    assert "moved 4 dead letters" in shown
    assert "4/4" in shown  # the progress bar, drawn on the terminal
    assert len(drain(url)) == 4
    assert drain(dlq) == []


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["peek", "URL", "-n", "0"], 2, "'0' must be at least 1"),
        (["peek", "URL", "-n", "5000"], 1, "1000"),
        (["dlq", "URL", "-n", "many"], 2, "'many' is not a whole number"),
        (["redrive", "DLQ", "--rate", "0", "--yes"], 2, "'0' must be a finite number of messages per second"),
        (["redrive", "DLQ", "--rate", "fast", "--yes"], 2, "'fast' is not a number of messages per second"),
        (["redrive", "DLQ", "--where", "novalue", "--yes"], 2, "'novalue' is not NAME=VALUE"),
        (["redrive", "DLQ", "--limit", "-3", "--yes"], 2, "'-3' must be at least 1"),
        (["redrive", "URL", "--dry-run"], 1, "InvalidArgument"),
        (["stats"], 2, "the following arguments are required: URL"),
        (["stats", "nosuch://q"], 1, "no provider for URL scheme 'nosuch'"),
        (["top", "URL", "--interval", "0.01"], 2, "below the minimum of 0.1 s"),
    ],
)
def test_bad_input_is_one_line_naming_the_problem(url: str, argv: list[str], code: int, says: str) -> None:
    dlq = cloudqueue.dead_letter_url(url)
    done = cli(*[url if arg == "URL" else dlq if arg == "DLQ" else arg for arg in argv])
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert says in done.stderr and "error:" in done.stderr and "Traceback" not in done.stderr


def test_commands_drawing_with_rich_say_how_to_install_it(url: str, tmp_path: Path) -> None:
    # A `rich` package that cannot be imported, first on the path: as if the extra were missing.
    (tmp_path / "no_rich" / "rich").mkdir(parents=True)
    (tmp_path / "no_rich" / "rich" / "__init__.py").write_text("raise ImportError('No module named rich')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "no_rich")}
    done = subprocess.run([CLOUDQUEUE, "top", url], capture_output=True, text=True, env=env, timeout=WAIT)
    assert done.returncode == 1
    assert "`cloudqueue top` needs the rich library: pip install 'cloudqueue[cli]'" in done.stderr
    # The other commands work without it.
    stats = subprocess.run([CLOUDQUEUE, "stats", url], capture_output=True, env=env, timeout=WAIT)
    assert stats.returncode == 0, stats.stderr


# -- a redrive killed halfway ---------------------------------------------------------------

KILLED_COUNT = 1000
#: Lease of the dead-letter queue in the SIGKILL case, in seconds.
LEASE = 1.0


def test_redrive_killed_with_sigkill_halfway_then_run_again_loses_nothing(url: str) -> None:
    send(url, [cloudqueue.Message(f"{n}", attributes={"n": str(n)}) for n in range(KILLED_COUNT)])
    dead_letter(url, KILLED_COUNT, "killed test")
    dlq = cloudqueue.dead_letter_url(url)
    # The killed run's leases on dead letters end soon after it dies, not in 30 s.
    cloudqueue.declare(dlq, lease=LEASE)
    # Slow enough that the test sees it halfway; the rate is not what is tested.
    first = subprocess.Popen([CLOUDQUEUE, "redrive", dlq, "--yes", "--rate", "400"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and first.poll() is None:
            if (cloudqueue.ops.stats(url).available or 0) >= KILLED_COUNT // 2:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the redrive finished before it could be killed"
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait()
    assert first.returncode == -signal.SIGKILL
    assert 0 < (cloudqueue.ops.stats(url).available or 0) < KILLED_COUNT
    deadline = time.monotonic() + WAIT
    while cloudqueue.ops.stats(dlq).in_flight and time.monotonic() < deadline:
        time.sleep(LEASE / 4)  # what the killed run held comes back when its leases end

    second = cli("redrive", dlq, "--yes")
    assert second.returncode == 0, second.stderr

    copies = Counter(message.text() for message in drain(url))
    assert set(copies) == {str(n) for n in range(KILLED_COUNT)}
    assert max(copies.values()) <= 2
    assert drain(dlq) == []
