"""The web console (cloudqueue.ui) served in-process by Starlette's TestClient, on memory
and SQLite queues: pages, escaping, the guards (CSRF, read-only, token, host) and the
actions (redrive preview then real, purge confirmation, send)."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import cloudqueue
from cloudqueue.ui import create_app

_names = itertools.count()
#: Where the TestClient sends requests: a loopback name, as a browser on the same machine.
BASE = "http://127.0.0.1"
ORIGIN = {"origin": BASE}
#: Bound for waiting on a condition (not an assertion about time).
WAIT = 20.0


def fresh(prefix: str = "ui") -> str:
    return f"memory://{prefix}-{time.monotonic_ns()}-{next(_names)}"


def dead_lettered(
    url: str, bodies: list[bytes], reason: str = "bad", attributes: dict[str, str] | None = None
) -> None:
    cloudqueue.declare(url, dead_letter_after=5)
    with cloudqueue.open_producer(url) as producer:
        for body in bodies:
            producer.send(body, attributes=attributes)
    done = 0
    with cloudqueue.open_consumer(url) as consumer:
        while done < len(bodies):
            for message in consumer.receive(max_messages=100, wait=1.0):
                message.dead_letter(reason)
                done += 1


def client(app: object) -> TestClient:
    return TestClient(app, base_url=BASE)  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def rows(html: str, kind: str) -> list[str]:
    return re.findall(rf'<tr class="{kind}" ([^>]*)>', html)


@pytest.fixture
def queue() -> Iterator[str]:
    url = fresh()
    cloudqueue.declare(url, dead_letter_after=5)
    yield url


# -- pages -------------------------------------------------------------------------------


def test_overview_lists_every_destination_with_its_counts(tmp_path: Path, queue: str) -> None:
    sqlite = f"sqlite:///{tmp_path / 'q.db'}?queue=orders"
    cloudqueue.declare(sqlite)
    with cloudqueue.open_producer(queue) as producer:
        producer.send_batch([cloudqueue.Message(b"a"), cloudqueue.Message(b"b")])
    with cloudqueue.open_producer(sqlite) as producer:
        producer.send(b"c")
    with client(create_app([queue, sqlite])) as http:
        page = http.get("/")
        assert page.status_code == 200
        html = page.text
        assert rows(html, "destination") == ['data-destination="0"', 'data-destination="1"']
        assert '<td class="provider">memory</td>' in html and '<td class="provider">sqlite</td>' in html
        assert ">orders</a>" in html
        stats = http.get("/api/stats").json()["destinations"]
        assert [d["stats"]["available"] for d in stats] == [2, 1]
        assert [d["cells"]["available"] for d in stats] == ["2", "1"]
        assert re.search(r'data-destination="0">.*?<td data-stat="available">2</td>', html, re.S)


def test_stats_json_follows_sends(queue: str) -> None:
    with client(create_app([queue])) as http:
        assert http.get("/api/stats").json()["destinations"][0]["stats"]["available"] == 0
        with cloudqueue.open_producer(queue) as producer:
            producer.send(b"x")
        assert http.get("/api/stats").json()["destinations"][0]["stats"]["available"] == 1


def test_a_failing_destination_shows_its_error_and_the_others_still_show(tmp_path: Path, queue: str) -> None:
    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'q.db'}?queue=a"
    with client(create_app([queue, missing])) as http:
        stats = http.get("/api/stats").json()["destinations"]
        assert stats[0]["error"] is None and stats[0]["stats"] is not None
        assert stats[1]["stats"] is None and "does not exist" in stats[1]["error"]
        page = http.get("/")
        assert page.status_code == 200
        assert re.search(r'<td class="error">FailedPrecondition: [^<]*does not exist', page.text)


def test_unknown_destination_is_404(queue: str) -> None:
    with client(create_app([queue])) as http:
        assert http.get("/queues/1").status_code == 404
        assert http.get("/queues/x").status_code == 404
        assert http.get("/api/queues/7/history").status_code == 404


def test_dead_letters_are_listed_with_reason_attempts_and_body(queue: str) -> None:
    body = b'{"order": 1, "items": [2]}'
    dead_lettered(queue, [body], reason="price missing", attributes={"kind": "order"})
    with client(create_app([queue])) as http:
        html = http.get("/queues/0").text
        [row] = rows(html, "dead-letter")
        message_id = re.search(r'data-message-id="([^"]+)"', row).group(1)  # type: ignore[union-attr]
        assert '<td class="reason">price missing</td>' in html
        assert '<span class="attribute">kind=order</span>' in html
        assert 'data-format="json"' in html and "&#34;order&#34;: 1" in html  # pretty-printed
        detail = http.get(f"/queues/0/dead-letters/{message_id}")
        assert detail.status_code == 200
        assert '<dd id="reason">price missing</dd>' in detail.text
        assert '<pre id="body" data-format="json">{\n  &#34;order&#34;: 1,' in detail.text
        assert http.get("/queues/0/dead-letters/no-such-id").status_code == 404


def test_binary_bodies_are_shown_as_hex(queue: str) -> None:
    dead_lettered(queue, [b"\xff\x00\x01binary"])
    with client(create_app([queue])) as http:
        html = http.get("/queues/0").text
        assert '<pre class="body-preview" data-format="hex">ff 00 01 62 69 6e 61 72 79</pre>' in html


def test_no_dead_letters_says_so(queue: str) -> None:
    with client(create_app([queue])) as http:
        html = http.get("/queues/0").text
        assert 'id="no-dead-letters"' in html and 'id="dead-letters"' not in html


def test_bodies_and_attributes_are_escaped_never_markup(queue: str) -> None:
    script = b"<script>alert(1)</script>"
    dead_lettered(queue, [script], reason="<b>bold</b>", attributes={"x": '"><img src=x onerror=alert(2)>'})
    with client(create_app([queue])) as http:
        for page in (http.get("/queues/0").text, _first_dead_letter_page(http)):
            assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
            assert "<img src=x" not in page


def _first_dead_letter_page(http: TestClient) -> str:
    link = re.search(r'class="dead-letter-link" href="([^"]+)"', http.get("/queues/0").text)
    assert link
    return http.get(link.group(1)).text


def test_secrets_never_reach_a_page() -> None:
    secret = "p4ss-w0rd-never-shown"
    url = f"memory://ann:{secret}@ui-secret-{time.monotonic_ns()}"
    dead_lettered(url, [b"x"])
    with client(create_app([url])) as http:
        pages = ["/", "/api/stats", "/queues/0", "/queues/0/chart", "/api/queues/0/history"]
        link = re.search(r'class="dead-letter-link" href="([^"]+)"', http.get("/queues/0").text)
        assert link
        for path in [*pages, link.group(1)]:
            page = http.get(path)
            assert page.status_code == 200, path
            assert secret not in page.text, path
        assert "memory://ann:***@ui-secret-" in http.get("/queues/0").text


# -- the chart -----------------------------------------------------------------------------


def test_the_sampler_feeds_the_chart(queue: str) -> None:
    with cloudqueue.open_producer(queue) as producer:
        producer.send_batch([cloudqueue.Message(b"1"), cloudqueue.Message(b"2"), cloudqueue.Message(b"3")])
    with client(create_app([queue], sample_interval=0.1)) as http:
        deadline = time.monotonic() + WAIT
        while len(http.get("/api/queues/0/history").json()["samples"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        samples = http.get("/api/queues/0/history").json()["samples"]
        assert len(samples) >= 2 and {s["available"] for s in samples} == {3}
        svg = http.get("/queues/0/chart").text
        assert '<svg id="depth-chart"' in svg
        assert re.search(r'<polyline class="depth-line" data-series="available" points="[\d., ]+"', svg)
        assert 'class="chart-top">3<' in svg  # the y axis tops at the largest depth


# -- guards ----------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused(queue: str) -> None:
    with client(create_app([queue])) as http:
        http.get("/queues/0")
        refused = http.post("/queues/0/send", data={"body": "forged"}, headers=ORIGIN)
        assert refused.status_code == 403 and "CSRF" in refused.text
        wrong = http.post("/queues/0/send", data={"body": "forged", "csrf_token": "guess"}, headers=ORIGIN)
        assert wrong.status_code == 403
    assert cloudqueue.ops.stats(queue).available == 0


def test_a_post_from_another_origin_is_refused(queue: str) -> None:
    with client(create_app([queue])) as http:
        token = csrf_of(http.get("/queues/0").text)
        for header in ({"origin": "http://evil.example"}, {"referer": "http://evil.example/page"},
                       {"origin": "null"}):
            refused = http.post("/queues/0/send", data={"body": "x", "csrf_token": token}, headers=header)
            assert refused.status_code == 403 and "cross-site" in refused.text
    assert cloudqueue.ops.stats(queue).available == 0


def test_read_only_shows_no_action_and_refuses_every_post(queue: str) -> None:
    dead_lettered(queue, [b"x"])
    with client(create_app([queue], read_only=True)) as http:
        html = http.get("/queues/0").text
        assert 'data-read-only="true"' in html and 'id="read-only-banner"' in html
        assert 'class="action-form"' not in html and "<form" not in html and 'type="checkbox"' not in html
        token = http.cookies.get("cloudqueue_ui_csrf")
        assert token
        for action, data in (("send", {"body": "x"}), ("purge", {"confirm": queue}),
                             ("redrive", {"dry_run": "1"}), ("redrive", {})):
            refused = http.post(f"/queues/0/{action}", data={**data, "csrf_token": token}, headers=ORIGIN)
            assert refused.status_code == 403 and "read-only" in refused.text
    stats = cloudqueue.ops.stats(queue)
    assert (stats.available, stats.dead_letters) == (0, 1)


def test_with_a_token_every_request_needs_it(queue: str) -> None:
    token = "s3cret-token-0123456789"
    with client(create_app([queue], token=token)) as http:
        for path in ("/", "/api/stats", "/queues/0", "/static/ui.js"):
            refused = http.get(path)
            assert refused.status_code == 401 and "token required" in refused.text
            assert "memory://" not in refused.text
        assert http.get("/", headers={"authorization": "Bearer wrong-token-0000000"}).status_code == 401
        assert http.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200
        # ?token= once: a cookie, and the token leaves the address.
        first = http.get(f"/queues/0?token={token}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/queues/0"
        assert token not in first.headers["location"]
        assert http.get("/queues/0").status_code == 200  # the cookie now


def test_without_a_token_only_loopback_host_names_are_answered(queue: str) -> None:
    app = create_app([queue])
    with TestClient(app, base_url="http://rebound.example") as http:
        refused = http.get("/")
        assert refused.status_code == 403 and "loopback" in refused.text
    for base in ("http://localhost:8025", "http://127.0.0.1:8025", "http://[::1]:8025"):
        with TestClient(app, base_url=base) as http:
            assert http.get("/").status_code == 200, base


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match="at least one destination"):
        create_app([])
    with pytest.raises(cloudqueue.InvalidArgument, match="list of destination URLs"):
        create_app("memory://x")
    with pytest.raises(cloudqueue.InvalidArgument, match=r"sample_interval must be at least 0\.1"):
        create_app(["memory://x"], sample_interval=0)
    with pytest.raises(cloudqueue.InvalidArgument, match="history must be above 0 and at most 86400"):
        create_app(["memory://x"], history=10**6)
    with pytest.raises(cloudqueue.InvalidArgument, match="at least 16 characters"):
        create_app(["memory://x"], token="short")
    with pytest.raises(cloudqueue.QueueError, match="nope"):
        create_app(["memory://x?nope=1"])


# -- actions ----------------------------------------------------------------------------------


def test_send_a_test_message(queue: str) -> None:
    with client(create_app([queue])) as http:
        token = csrf_of(http.get("/queues/0").text)
        sent = http.post("/queues/0/send", headers=ORIGIN, follow_redirects=False, data={
            "csrf_token": token, "body": "hello <world>", "attributes": "kind=test\n\nsource = console",
        })
        assert sent.status_code == 303 and sent.headers["location"].startswith("/queues/0?done=sent&id=")
        assert 'id="flash"' in http.get(sent.headers["location"]).text
        bad = http.post("/queues/0/send", headers=ORIGIN,
                        data={"csrf_token": token, "body": "x", "attributes": "novalue"})
        assert bad.status_code == 400 and "attributes: line 1 is not NAME=VALUE" in bad.text
        empty = http.post("/queues/0/send", headers=ORIGIN, data={"csrf_token": token, "body": ""})
        assert empty.status_code == 400 and "empty" in empty.text
    with cloudqueue.open_consumer(queue) as consumer:
        [message] = consumer.receive(max_messages=10, wait=2.0)
        assert message.body == b"hello <world>"
        assert message.attributes == {"kind": "test", "source": "console"}
        message.ack()


def test_purge_needs_the_queue_name_typed(queue: str) -> None:
    with cloudqueue.open_producer(queue) as producer:
        producer.send(b"x")
    name = queue.removeprefix("memory://")
    with client(create_app([queue])) as http:
        token = csrf_of(http.get("/queues/0").text)
        wrong = http.post("/queues/0/purge", headers=ORIGIN, data={"csrf_token": token, "confirm": "orders"})
        assert wrong.status_code == 400 and f"type the queue&#39;s name, {name}" in wrong.text
        assert cloudqueue.ops.stats(queue).available == 1
        done = http.post("/queues/0/purge", headers=ORIGIN, follow_redirects=False,
                         data={"csrf_token": token, "confirm": name})
        assert done.status_code == 303 and done.headers["location"] == "/queues/0?done=purged"
    assert cloudqueue.ops.stats(queue).available == 0


def test_redrive_previews_then_moves_the_selected_dead_letters(queue: str) -> None:
    dead_lettered(queue, [b"one", b"two", b"three"], reason="flaky")
    with client(create_app([queue])) as http:
        html = http.get("/queues/0").text
        token = csrf_of(html)
        ids = re.findall(r'<tr class="dead-letter" data-message-id="([^"]+)"', html)
        assert len(ids) == 3
        chosen = ids[:2]
        preview = http.post("/queues/0/redrive", headers=ORIGIN,
                            data={"csrf_token": token, "dry_run": "1", "id": chosen})
        assert preview.status_code == 200
        assert 'data-would-move="2"' in preview.text and '<li data-reason="flaky">' in preview.text
        assert cloudqueue.ops.stats(queue).dead_letters == 3  # a preview moves nothing
        confirm = csrf_of(preview.text)
        hidden_ids = re.findall(r'<input type="hidden" name="id" value="([^"]+)">', preview.text)
        assert sorted(hidden_ids) == sorted(chosen) and 'id="redrive-confirm"' in preview.text
        done = http.post("/queues/0/redrive", headers=ORIGIN, data={
            "csrf_token": confirm, "id": hidden_ids, "where": "", "reason": "", "limit": "",
        })
        assert done.status_code == 200 and 'data-moved="2"' in done.text
    stats = cloudqueue.ops.stats(queue)
    assert (stats.available, stats.dead_letters) == (2, 1)


def test_redrive_filtered_by_attribute_and_reason(queue: str) -> None:
    dead_lettered(queue, [b"a"], reason="timeout", attributes={"tenant": "acme"})
    dead_lettered(queue, [b"b"], reason="timeout", attributes={"tenant": "other"})
    dead_lettered(queue, [b"c"], reason="schema", attributes={"tenant": "acme"})
    with client(create_app([queue])) as http:
        token = csrf_of(http.get("/queues/0").text)
        done = http.post("/queues/0/redrive", headers=ORIGIN,
                         data={"csrf_token": token, "where": "tenant=acme", "reason": "timeout"})
        assert 'data-moved="1"' in done.text and 'data-skipped="2"' in done.text
        bad = http.post("/queues/0/redrive", headers=ORIGIN, data={"csrf_token": token, "limit": "0"})
        assert bad.status_code == 400 and "limit must be at least 1, not 0" in bad.text
    with cloudqueue.open_consumer(queue) as consumer:
        [message] = consumer.receive(max_messages=10, wait=2.0)
        assert message.body == b"a"
        message.ack()
    assert cloudqueue.ops.stats(queue).dead_letters == 2


def test_sqlite_dead_letters_are_browsed_and_redriven(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}?queue=demo-orders"
    dead_lettered(url, [b"<poison>"], reason="address without a postcode")
    with client(create_app([url])) as http:
        html = http.get("/queues/0").text
        assert '<td class="reason">address without a postcode</td>' in html
        assert "&lt;poison&gt;" in html
        token = csrf_of(html)
        preview = http.post("/queues/0/redrive", headers=ORIGIN, data={"csrf_token": token, "dry_run": "1"})
        assert 'data-would-move="1"' in preview.text
        done = http.post("/queues/0/redrive", headers=ORIGIN, data={"csrf_token": csrf_of(preview.text)})
        assert 'data-moved="1"' in done.text
        assert 'id="no-dead-letters"' in http.get("/queues/0").text
    stats = cloudqueue.ops.stats(url)
    assert (stats.available, stats.dead_letters) == (1, 0)
