"""``cloudqueue top``: the figures and screen as pure functions of made-up histories, then
the real command in a pseudo-terminal, its screen read back through the pyte emulator."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest
from rich.console import Console

import cloudqueue
from cloudqueue.cli._top_history import SPARK_BLOCKS, History, Sample, rates, sparkline
from cloudqueue.cli._top_view import render
from cloudqueue.driver import QueueStats
from cloudqueue.testing.contract import unique_name

COLUMNS, LINES = 160, 30
#: Generous bound for the screen to show what the test waits for (a slow CI machine).
WAIT = 60.0
CLOUDQUEUE = str(Path(sys.executable).with_name("cloudqueue"))


def counts(available: int, *, sent: int | None = None, received: int | None = None,
           exact: bool = True, dead: int | None = 0) -> QueueStats:
    return QueueStats(available=available, in_flight=0, delayed=0, dead_letters=dead,
                      oldest_age=1.5, exact=exact, total_sent=sent, total_received=received)


# -- figures --------------------------------------------------------------------------


def test_rates_come_from_counter_deltas_over_the_window() -> None:
    samples = [
        Sample(0.0, counts(10, sent=100, received=90)),
        Sample(2.0, counts(20, sent=140, received=110)),
        Sample(4.0, counts(16, sent=160, received=144)),
    ]
    figures = rates(samples)
    assert figures.sent == pytest.approx(15.0)  # (160 - 100) / 4
    assert figures.received == pytest.approx(13.5)  # (144 - 90) / 4
    assert figures.depth_change == pytest.approx(1.5)  # (16 - 10) / 4


def test_rates_use_only_the_last_window_of_samples_and_skip_errors() -> None:
    samples = [
        Sample(0.0, counts(0, sent=0)),
        Sample(30.0, counts(50, sent=500)),
        Sample(35.0, None, "Unavailable: down"),
        Sample(36.0, counts(20, sent=560)),
    ]
    figures = rates(samples, window=10.0)
    assert figures.sent == pytest.approx(10.0)  # (560 - 500) / 6: the sample at 0 s is too old
    assert figures.depth_change == pytest.approx(-5.0)


def test_rates_unknown_without_counters_or_after_a_counter_restart() -> None:
    uncounted = rates([Sample(0.0, counts(4)), Sample(1.0, counts(6))])
    assert (uncounted.sent, uncounted.received, uncounted.depth_change) == (None, None, 2.0)
    restarted = rates([Sample(0.0, counts(4, sent=900)), Sample(1.0, counts(1, sent=3))])
    assert restarted.sent is None and restarted.depth_change == -3.0
    assert rates([Sample(0.0, counts(4, sent=1))]).sent is None


def test_sparkline_has_one_block_per_bucket_scaled_to_the_top_value() -> None:
    samples = [Sample(t, counts(depth)) for t, depth in [(1.0, 0), (2.0, 40), (3.5, 80), (3.9, 10)]]
    line, top = sparkline(samples, now=4.0, width=4, bucket=1.0)
    # Buckets [0,1) [1,2) [2,3) [3,4]: none read in the first; the last reading of a bucket wins.
    assert top == 40
    assert line == f" {SPARK_BLOCKS[0]}{SPARK_BLOCKS[-1]}{SPARK_BLOCKS[2]}"
    assert sparkline([], now=4.0, width=3, bucket=1.0) == ("   ", 0)


def test_history_forgets_samples_older_than_it_keeps() -> None:
    history = History("q", keep=5.0)
    for t in range(10):
        history.record(Sample(float(t), counts(t)))
    assert [sample.at for sample in history.samples] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    history.record(Sample(10.0, None, "NotFound: gone"))
    assert history.latest is not None and history.latest.error == "NotFound: gone"
    assert history.latest_stats == counts(9)


def screen_text(histories: list[History], now: float) -> str:
    console = Console(width=COLUMNS, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(histories, now=now, interval=1.0, clock="12:00:00"))
    return console.export_text()


def test_render_shows_counts_rates_errors_and_labels_what_is_unknown() -> None:
    counted = History("sqlite:///a.db?queue=orders", keep=60.0)
    counted.record(Sample(0.0, counts(5, sent=10, received=5, dead=3)))
    counted.record(Sample(2.0, counts(9, sent=20, received=11, dead=3)))
    estimated = History("sqs://queue/approx", keep=60.0)
    estimated.record(Sample(0.0, counts(7, exact=False, dead=None)))
    estimated.record(Sample(2.0, counts(3, exact=False, dead=None)))
    failing = History("memory://broken", keep=60.0)
    failing.record(Sample(2.0, None, "NotFound: no such queue"))

    text = screen_text([counted, estimated, failing], now=2.0)
    rows = {cells[0]: cells for cells in table_rows(text)}
    assert rows["sqlite:///a.db?queue=orders"][1:9] == ["9", "0", "0", "3", "1.5s", "5.0", "3.0", "+2.0"]
    assert rows["sqs://queue/approx"][1:9] == ["~3", "~0", "~0", "-", "1.5s", "-", "-", "-2.0"]
    assert rows["memory://broken"][1:9] == ["-"] * 8
    assert "NotFound: no such queue" in text
    assert "~ approximate counts" in text
    assert "the provider does not count sends and receives" in text
    assert "cloudqueue top · every 1 s · 12:00:00" in text


def table_rows(text: str) -> list[list[str]]:
    """The cells of each table line that has a first cell (continuation lines have none)."""
    rows = []
    for line in text.splitlines():
        if line.count("│") >= 10:  # rich's vertical rules: 11 columns, 12 rules
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            if cells[0]:
                rows.append(cells)
    return rows


# -- the real command in a pseudo-terminal ----------------------------------------------


class Terminal:
    """A child process on a pseudo-terminal; what it writes goes through pyte."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "PYTHONUTF8": "1", "LANG": "C.UTF-8"}
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.ByteStream(self.screen)

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            self.raw += chunk
            self.stream.feed(chunk)

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str) -> list[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.pump(0.1)
            if predicate(self.screen.display):
                return list(self.screen.display)
            assert self.process.poll() is None, f"top exited early: {bytes(self.raw)[-2000:]!r}"
        raise AssertionError(f"never saw {what}; screen:\n" + "\n".join(self.screen.display))

    def finish(self) -> int:
        deadline = time.monotonic() + WAIT
        while self.process.poll() is None and time.monotonic() < deadline:
            self.pump(0.1)
        for _ in range(20):  # drain what it wrote last
            self.pump(0.05)
        return self.process.wait(timeout=5)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(*argv: str) -> Terminal:
        started.append(Terminal([CLOUDQUEUE, *argv], tmp_path))
        return started[-1]

    yield start
    for term in started:
        term.close()


def row_of(screen: list[str], label: str) -> list[str] | None:
    for cells in table_rows("\n".join(screen)):
        if cells[0] == label:
            return cells
    return None


def shows(label: str, column: int, value: str) -> Callable[[list[str]], bool]:
    def predicate(screen: list[str]) -> bool:
        cells = row_of(screen, label)
        return cells is not None and cells[column] == value

    return predicate


def test_top_shows_live_counts_per_url_until_ctrl_c(
    terminal: Callable[..., Terminal], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short relative URLs: the labels fit on one line
    orders, invoices = f"sqlite:///ops.db?queue={unique_name('o')}", f"sqlite:///ops.db?queue={unique_name('i')}"
    cloudqueue.declare(orders, dead_letter_after=1)
    cloudqueue.declare(invoices)
    with cloudqueue.open_producer(orders) as producer:
        producer.send_batch([cloudqueue.Message(f"order {n}") for n in range(7)])
    with cloudqueue.open_consumer(orders) as consumer:
        [poison] = consumer.receive(max_messages=1, wait=5)
        poison.dead_letter("bad order")

    top = terminal("top", orders, invoices, "--interval", "0.2")
    screen = top.wait_for(shows(orders, 1, "6"), f"{orders} with 6 available")
    assert row_of(screen, orders)[4] == "1"  # type: ignore[index]  # the dead letter
    assert row_of(screen, invoices)[1:5] == ["0", "0", "0", "0"]  # type: ignore[index]

    with cloudqueue.open_producer(invoices) as producer:
        producer.send_batch([cloudqueue.Message(f"invoice {n}") for n in range(12)])
    screen = top.wait_for(shows(invoices, 1, "12"), f"{invoices} with 12 available")
    # Twelve sent since the first reading: the counted rate is positive, the depth grew.
    assert float(row_of(screen, invoices)[6]) > 0  # type: ignore[index]
    # The sparkline's newest block is the full height of the 12 now waiting.
    assert row_of(screen, invoices)[9].endswith(f"{SPARK_BLOCKS[-1]} 12")  # type: ignore[index]
    assert "every 0.2 s" in "\n".join(screen)

    top.process.send_signal(signal.SIGINT)
    assert top.finish() == 0
    raw = bytes(top.raw)
    # Left the alternate screen and showed the cursor again, after the last frame drawn.
    assert raw.rfind(b"\x1b[?1049l") > raw.rfind(b"\x1b[?1049h") >= 0
    assert raw.rfind(b"\x1b[?25h") > raw.rfind(b"\x1b[?25l") >= 0
    assert b"Traceback" not in raw


def test_top_shows_an_error_in_its_row_and_keeps_the_others(
    terminal: Callable[..., Terminal], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    good = f"sqlite:///ops.db?queue={unique_name('good')}"
    cloudqueue.declare(good)
    with cloudqueue.open_producer(good) as producer:
        producer.send(cloudqueue.Message("one"))
    bad = "memory://q?colour=red"
    top = terminal("top", bad, good, "--interval", "0.2")
    screen = top.wait_for(shows(good, 1, "1"), f"{good} with 1 available")
    text = "\n".join(screen)
    assert "unknown URL parameter 'colour'" in text
    assert row_of(screen, bad)[1:5] == ["-", "-", "-", "-"]  # type: ignore[index]
    top.process.send_signal(signal.SIGINT)
    assert top.finish() == 0


def test_top_refuses_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run([CLOUDQUEUE, "top", "memory://q"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "stdout is not one: use `cloudqueue stats`" in done.stderr
