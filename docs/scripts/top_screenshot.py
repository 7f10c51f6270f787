"""Capture ``cloudqueue top`` from a real run and draw it as docs/images/top.svg.

A producer and a slower consumer (which dead-letters some orders) run on an SQLite
file while ``cloudqueue top`` draws in a pseudo-terminal; the pyte terminal emulator
reads that terminal, and its last screen is written out as SVG, one text run per
stretch of characters sharing colours and weight.

    .venv/bin/python docs/scripts/top_screenshot.py [--seconds 75] [--out docs/images/top.svg]

The same file is the producer and the consumer (``produce`` / ``consume`` roles),
so they are real separate processes, as an operator's would be.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from html import escape
from pathlib import Path

import pyte

import cloudqueue

COLUMNS, LINES = 150, 10
CHAR_WIDTH, LINE_HEIGHT, FONT_SIZE, MARGIN = 8.4, 18, 14, 14
BACKGROUND, FOREGROUND = "#1e1e2e", "#d9e0ee"
#: pyte's names for the 16 ANSI colours, drawn in a palette that reads on a dark background.
PALETTE = {
    "black": "#45475a", "red": "#f38ba8", "green": "#a6e3a1", "brown": "#f9e2af",
    "blue": "#89b4fa", "magenta": "#f5c2e7", "cyan": "#94e2d5", "white": "#bac2de",
    "brightblack": "#585b70", "brightred": "#f38ba8", "brightgreen": "#a6e3a1",
    "brightbrown": "#f9e2af", "brightblue": "#89b4fa", "brightmagenta": "#f5c2e7",
    "brightcyan": "#94e2d5", "brightwhite": "#ffffff",
}
ROOT = Path(__file__).resolve().parents[2]


# -- the workload ---------------------------------------------------------------------------


def produce(url: str, seconds: float, mean: float) -> None:
    """Send about ``mean`` messages a second, swelling and ebbing (so the depth sparkline
    has a shape)."""
    started = time.monotonic()
    number = 0
    with cloudqueue.open_producer(url) as producer:
        while (elapsed := time.monotonic() - started) < seconds:
            per_second = mean * (1 + 0.8 * math.sin(elapsed / 8))
            batch = max(1, round(per_second / 4))
            producer.send_batch([cloudqueue.Message(f"order {number + i}") for i in range(batch)])
            number += batch
            time.sleep(0.25)


def consume(url: str, per_message: float, dead_every: int) -> None:
    """Work ``per_message`` seconds on each; dead-letter every ``dead_every``-th (0: none)."""
    with cloudqueue.open_consumer(url, max_in_flight=10) as consumer:
        while True:
            for message in consumer.receive(max_messages=5, wait=1.0):
                time.sleep(per_message)
                if dead_every and int(message.text().split()[1]) % dead_every == 0:
                    message.dead_letter("price missing")
                else:
                    message.ack()


# -- the capture ----------------------------------------------------------------------------


Grid = list[list[pyte.screens.Char]]


def capture(seconds: float, workdir: Path) -> Grid:
    orders = f"sqlite:///{workdir}/shop.db?queue=orders"
    invoices = f"sqlite:///{workdir}/shop.db?queue=invoices"
    cloudqueue.declare(orders, dead_letter_after=3)
    cloudqueue.declare(invoices)
    me = [sys.executable, __file__]
    workers = [
        subprocess.Popen([*me, "produce", orders, str(seconds + 5), "30"]),
        subprocess.Popen([*me, "consume", orders, "0.03", "13"]),
        subprocess.Popen([*me, "produce", invoices, str(seconds + 5), "12"]),
        subprocess.Popen([*me, "consume", invoices, "0.005", "0"]),
    ]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    # Relative URLs: the labels an operator would type, short enough for one line.
    top = subprocess.Popen(
        [str(Path(sys.executable).with_name("cloudqueue")), "top", "sqlite:///shop.db?queue=orders",
         "sqlite:///shop.db?queue=invoices", "--interval", "1"],
        stdin=slave, stdout=slave, stderr=slave, cwd=workdir,
        env={**os.environ, "TERM": "xterm-256color", "PYTHONUTF8": "1"},
    )
    os.close(slave)
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                stream.feed(os.read(master, 65536))
        # The screen as the operator saw it before quitting (Ctrl-C restores the terminal).
        shown = [[screen.buffer[y][x] for x in range(COLUMNS)] for y in range(LINES)]
        top.send_signal(signal.SIGINT)
        top.wait(timeout=30)
    finally:
        for process in [*workers, top]:
            if process.poll() is None:
                process.kill()
                process.wait()
        os.close(master)
    return shown


# -- the SVG --------------------------------------------------------------------------------


def colour(name: str, default: str) -> str:
    if name == "default":
        return default
    if len(name) == 6 and all(c in "0123456789abcdefABCDEF" for c in name):
        return f"#{name}"  # 256-colour and true-colour values come as hex
    return PALETTE.get(name, default)


def to_svg(grid: Grid, title: str) -> str:
    width = round(COLUMNS * CHAR_WIDTH + 2 * MARGIN)
    height = LINES * LINE_HEIGHT + 2 * MARGIN + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" '
        f'font-size="{FONT_SIZE}" xml:space="preserve">',
        f'<rect width="{width}" height="{height}" rx="8" fill="{BACKGROUND}"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 6}" fill="#7f849c" font-size="11">{escape(title)}</text>',
    ]
    top = MARGIN + 24
    for y in range(LINES):
        row = grid[y]
        x = 0
        while x < COLUMNS:
            char = row[x]
            fg = colour(char.fg, FOREGROUND)
            bg = colour(char.bg, BACKGROUND)
            if char.reverse:
                fg, bg = bg, fg
            # A run: the following characters drawn alike.
            end = x + 1
            while end < COLUMNS and _style(row[end]) == _style(char):
                end += 1
            text = "".join(row[i].data for i in range(x, end)).rstrip()
            left = MARGIN + x * CHAR_WIDTH
            if bg != BACKGROUND:
                parts.append(f'<rect x="{left:.1f}" y="{top + y * LINE_HEIGHT}" '
                             f'width="{(end - x) * CHAR_WIDTH:.1f}" height="{LINE_HEIGHT}" fill="{bg}"/>')
            if text.strip():
                weight = ' font-weight="bold"' if char.bold else ""
                parts.append(
                    f'<text x="{left:.1f}" y="{top + y * LINE_HEIGHT + LINE_HEIGHT - 5}" fill="{fg}"{weight} '
                    f'textLength="{len(text) * CHAR_WIDTH:.1f}" lengthAdjust="spacing">{escape(text)}</text>'
                )
            x = end
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _style(char: pyte.screens.Char) -> tuple[object, ...]:
    return (char.fg, char.bg, char.bold, char.reverse)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "produce":
        return produce(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "consume":
        return consume(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="how long top runs before the capture")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "top.svg")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        grid = capture(args.seconds, Path(workdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    title = ("cloudqueue top · SQLite · a producer and a slower consumer that dead-letters every 13th order "
             "· captured by docs/scripts/top_screenshot.py")
    args.out.write_text(to_svg(grid, title))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
