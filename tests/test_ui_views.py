"""The console's pure parts: body rendering, chart geometry, loopback names."""

from __future__ import annotations

import pytest

from cloudqueue.ui._bodies import PREVIEW_CHARS, full, preview
from cloudqueue.ui._chart import chart
from cloudqueue.ui._guard import is_loopback
from cloudqueue.ui._sampler import Sample


def test_json_objects_are_pretty_printed_and_scalars_stay_text() -> None:
    assert full(b'{"a":[1,2]}').format == "json"
    assert full(b'{"a":[1,2]}').text == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert full(b"42").format == "text" and full(b"{not json").format == "text"


def test_binary_is_a_hex_dump_with_printable_column() -> None:
    shown = full(b"\x00\x01AB" + bytes(range(200, 216)))
    assert shown.format == "hex"
    assert shown.text.splitlines()[0].startswith("00000000  00 01 41 42 c8")
    assert shown.text.splitlines()[0].endswith("..AB............")


def test_previews_are_cut_and_say_the_size() -> None:
    long = ("x" * 500).encode()
    assert preview(long).text == "x" * PREVIEW_CHARS + "… (500 bytes)"
    assert preview(b"\xff" * 100).text.endswith("… (36 more bytes)")


def test_the_chart_spans_the_history_and_scales_to_the_largest_value() -> None:
    samples = [Sample(1000.0, 0, 0, None), Sample(1060.0, 10, 0, 5)]
    drawn = chart(samples, now=1060.0, history=60.0)
    assert drawn.samples == 2 and drawn.top == 10
    first, last = drawn.lines["available"].split()
    assert first == "40.0,140.0" and last == "600.0,10.0"  # oldest at the left bottom, newest top right
    assert drawn.lines["dead_letters"] == "600.0,75.0"  # the unknown value leaves a gap
    assert chart([], now=0.0, history=60.0).lines == {"available": "", "dead_letters": ""}


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "LOCALHOST"])
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com", "localhost.example.com", "", "::"])
def test_names_beyond_loopback(host: str) -> None:
    assert not is_loopback(host)
