"""The web console (`cloudqueue ui`) in a real headless Chromium: what an operator sees and
does on the page, against memory and SQLite queues and Service Bus's local broker.

The console is served in this process (uvicorn in a thread) so that the memory:// queues
the tests fill are the ones it shows; one test starts it through the CLI entry point
instead. Waits are on conditions in the page (ui_browser.wait_until), never on the clock.
The element ids and data attributes used here are the console's documented DOM contract.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cloudqueue_azure_servicebus.testing import ServiceBusBroker
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from ui_browser import PATIENCE, Served, chromium, loopback_socket, screenshot, serve_in_thread, wait_until

import cloudqueue
from cloudqueue import ops
from cloudqueue.testing.contract import unique_name
from cloudqueue.ui import create_app

CLOUDQUEUE_CLI = Path(sys.executable).with_name("cloudqueue")


# ----- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker() as running:
        yield running


def servicebus_url(broker: ServiceBusBroker, name: str) -> str:
    """A cloudqueue URL of a fresh queue on the local broker (its key is in the URL, so
    pages must show it redacted)."""
    connection = quote(broker.connection_string, safe="")
    ca_file = quote(broker.certificate_path, safe="")
    url = f"azuresb://local/{name}?connection_string={connection}&admin_ca_file={ca_file}"
    cloudqueue.declare(url)
    return url


def memory_url(name: str) -> str:
    """An empty memory queue (and dead-letter queue). Memory queues live as long as the
    process, so each test uses names of its own (readable ones: they appear in the docs'
    screenshots) and empties them first in case the test runs again in this process."""
    url = f"memory://console-{name}"
    cloudqueue.declare(url)
    cloudqueue.purge(url)
    with contextlib.suppress(cloudqueue.NotFound):  # no dead letter yet, no dead-letter queue
        cloudqueue.purge(cloudqueue.dead_letter_url(url))
    return url


def sqlite_url(tmp_path: Path, queue: str) -> str:
    url = f"sqlite:///{tmp_path / 'console.db'}?queue={queue}"
    cloudqueue.declare(url)
    return url


@contextmanager
def console(urls: list[str], **options: Any) -> Iterator[Served]:
    with serve_in_thread(create_app(urls, **options)) as served:
        yield served


def send(url: str, *bodies: bytes, attributes: dict[str, str] | None = None) -> None:
    with cloudqueue.open_producer(url) as producer:
        for body in bodies:
            producer.send(body, attributes=attributes or {})


def dead_letter(url: str, body: bytes, reason: str, attributes: dict[str, str] | None = None) -> None:
    """Send ``body`` and move it to the dead letters of ``url`` with ``reason`` (the queue
    must be empty: the first message received is the one dead-lettered)."""
    send(url, body, attributes=attributes)
    with cloudqueue.open_consumer(url) as consumer:
        got: list[cloudqueue.ReceivedMessage] = []
        for _ in range(20):
            got = consumer.receive(1, 1.0)
            if got:
                break
        assert got, f"the message sent to {url.split('?')[0]} never arrived"
        got[0].dead_letter(reason=reason)


# ----- reading the page ----------------------------------------------------------------


def stat_cell(driver: WebDriver, index: int, stat: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-destination="{index}"] td[data-stat="{stat}"]')


def wait_for_stat(driver: WebDriver, index: int, stat: str, expected: str) -> None:
    """Wait until the live refresh shows ``expected`` in a destination's ``stat`` cell."""

    wait_until(
        driver,
        lambda d: stat_cell(d, index, stat).text.strip() == expected,
        f"destination {index}'s {stat} to read {expected!r}",
    )


def wait_for(driver: WebDriver, selector: str) -> WebElement:
    """The first element matching the CSS ``selector``, once the page has one."""
    found: list[WebElement] = wait_until(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, selector), f"{selector} on {driver.current_url}"
    )
    return found[0]


def open_page(driver: WebDriver, url: str, ready_selector: str) -> None:
    driver.get(url)
    wait_for(driver, ready_selector)


def wait_for_refusal(driver: WebDriver) -> None:
    wait_until(driver, lambda d: "token required" in d.find_element(By.TAG_NAME, "body").text, "the refusal")


def cell(row: WebElement, selector: str) -> str:
    return row.find_element(By.CSS_SELECTOR, selector).text


def no_alert(driver: WebDriver) -> bool:
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


# ----- the harness itself --------------------------------------------------------------


def test_the_browser_starts_without_selenium_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Selenium Manager downloads drivers and browsers; the harness must never need it."""
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Selenium Manager was asked for a driver")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    with chromium() as driver:
        driver.get("data:text/html,<p id='ok'>ready</p>")
        assert driver.find_element(By.ID, "ok").text == "ready"
        assert driver.capabilities["browserName"] in ("chrome", "chromium")


# ----- the console ---------------------------------------------------------------------


def test_overview_lists_memory_sqlite_and_servicebus_queues_without_secrets(
    browser: WebDriver, broker: ServiceBusBroker, tmp_path: Path
) -> None:
    orders = memory_url("orders")
    invoices = sqlite_url(tmp_path, "invoices")
    shipments_name = "shipments"
    shipments = servicebus_url(broker, shipments_name)
    dead_letter(orders, b'{"order": 0, "currency": "XXX"}', "unsupported currency 'XXX'")
    send(orders, b'{"order": 1}', b'{"order": 2}')
    send(invoices, b"invoice 7")
    with console([orders, invoices, shipments]) as served:
        open_page(browser, served.url("/"), "#destinations tr.destination")
        rows = browser.find_elements(By.CSS_SELECTOR, "#destinations tr.destination")
        assert len(rows) == 3
        listed = [(cell(row, "td.provider"), cell(row, "td.name")) for row in rows]
        assert listed == [
            ("memory", "console-orders"),
            ("sqlite", "invoices"),
            ("azuresb", shipments_name),
        ]
        wait_for_stat(browser, 0, "available", "2")
        wait_for_stat(browser, 0, "dead_letters", "1")
        wait_for_stat(browser, 1, "available", "1")
        wait_for_stat(browser, 2, "available", "0")
        key = broker.connection_string.split("SharedAccessKey=")[1].split(";")[0]
        assert key not in browser.page_source
        screenshot(browser, "overview")
        open_page(browser, served.url("/queues/2"), "#queue-name")
        assert browser.find_element(By.ID, "queue-name").text == shipments_name
        assert key not in browser.page_source


def test_depths_update_on_the_open_page_after_messages_are_sent(
    browser: WebDriver, broker: ServiceBusBroker
) -> None:
    orders = memory_url("arrivals")
    shipments = servicebus_url(broker, unique_name("arrivals"))
    with console([orders, shipments]) as served:
        open_page(browser, served.url("/"), "#destinations tr.destination")
        wait_for_stat(browser, 0, "available", "0")
        wait_for_stat(browser, 1, "available", "0")
        send(orders, b"a", b"b", b"c")
        send(shipments, b"x", b"y")
        # No reload: the page's own refresh has to bring the new depths.
        wait_for_stat(browser, 0, "available", "3")
        wait_for_stat(browser, 1, "available", "2")


@pytest.mark.parametrize("provider", ["memory", "azuresb"])
def test_a_dead_letter_opens_with_its_reason_and_redrive_moves_it_back(
    browser: WebDriver, broker: ServiceBusBroker, provider: str
) -> None:
    url = memory_url("payments") if provider == "memory" else servicebus_url(broker, "payments")
    reason = "payment gateway refused: card expired"
    dead_letter(url, b'{"order_id": "order-0017", "amount": 12.5}', reason, attributes={"stage": "charge"})
    with console([url]) as served:
        open_page(browser, served.url("/queues/0"), "#dead-letters tr.dead-letter")
        wait_for_stat(browser, 0, "available", "0")
        wait_for_stat(browser, 0, "dead_letters", "1")
        row = browser.find_element(By.CSS_SELECTOR, "#dead-letters tr.dead-letter")
        assert row.find_element(By.CSS_SELECTOR, "td.reason").text == reason
        assert "stage=charge" in row.find_element(By.CSS_SELECTOR, "td.attributes").text

        row.find_element(By.CSS_SELECTOR, "a.dead-letter-link").click()
        wait_for(browser, "#reason")
        assert browser.find_element(By.ID, "reason").text == reason
        body = browser.find_element(By.ID, "body")
        assert body.get_attribute("data-format") == "json"
        assert '"order_id": "order-0017"' in body.text

        open_page(browser, served.url("/queues/0"), "#dead-letters tr.dead-letter")
        browser.find_element(By.CSS_SELECTOR, "input.select-dead-letter").click()
        browser.find_element(By.ID, "redrive-preview").click()
        preview = wait_for(browser, "#redrive-preview-result")
        assert preview.get_attribute("data-would-move") == "1"
        assert ops.stats(url).dead_letters == 1, "a preview must not move anything"
        browser.find_element(By.ID, "redrive-confirm").click()
        result = wait_for(browser, "#redrive-result")
        assert result.get_attribute("data-moved") == "1"
        assert result.get_attribute("data-failed") == "0"

        browser.find_element(By.ID, "back-to-queue").click()
        wait_for(browser, "#queue-name")
        wait_for_stat(browser, 0, "available", "1")
        wait_for_stat(browser, 0, "dead_letters", "0")
        assert browser.find_elements(By.ID, "no-dead-letters")
    stats = ops.stats(url)
    assert (stats.available, stats.dead_letters) == (1, 0)


def sampled(served: Served, available: int, times: int = 4) -> None:
    """Wait until the console's sampler has recorded ``available`` as the queue's depth
    ``times`` times in a row (so each level is a visible step in the chart)."""
    deadline = time.monotonic() + PATIENCE
    with httpx.Client(base_url=served.base) as client:
        while True:
            samples = client.get("/api/queues/0/history").json()["samples"][-times:]
            if len(samples) == times and all(sample["available"] == available for sample in samples):
                return
            assert time.monotonic() < deadline, f"the sampler never recorded a depth of {available}"
            time.sleep(0.05)


def chart_showing_top(top: str) -> Any:
    """A wait condition: once the chart's scale reads ``top``, its number of samples, the
    distinct heights of the available line and the count of dead-letter lines (read in one
    go, as the page replaces the chart every few seconds)."""

    def read(driver: WebDriver) -> tuple[int, set[str], int] | None:
        chart = driver.find_element(By.ID, "depth-chart")
        if chart.find_element(By.CSS_SELECTOR, ".chart-top").text != top:
            return None
        available = chart.find_element(By.CSS_SELECTOR, 'polyline[data-series="available"]')
        points = (available.get_attribute("points") or "").split()
        dead = chart.find_elements(By.CSS_SELECTOR, 'polyline[data-series="dead_letters"]')
        return int(chart.get_attribute("data-samples") or 0), {p.split(",")[1] for p in points}, len(dead)

    return read


def test_the_depth_chart_draws_what_the_sampler_saw(browser: WebDriver) -> None:
    url = memory_url("refunds")
    dead_letter(url, b'{"refund": "r-1", "amount": -3}', "ValueError: negative amount")
    dead_letter(url, b"\x00\x01\xff refund batch", "UnicodeDecodeError: not UTF-8")
    # Sampling four times a second over 8 seconds of history draws the steps quickly.
    with console([url], sample_interval=0.25, history=8.0) as served:
        sampled(served, 0)
        send(url, *[b'{"refund": "r-%d"}' % n for n in range(4)])
        sampled(served, 4)
        send(url, *[b'{"refund": "r-%d"}' % n for n in range(4, 9)])
        sampled(served, 9)
        with cloudqueue.open_consumer(url) as consumer:
            taken = 0
            while taken < 6:
                for message in consumer.receive(6 - taken, 1.0):
                    message.ack()
                    taken += 1
        sampled(served, 3)
        send(url, b'{"refund": "r-9"}', b'{"refund": "r-10"}')
        sampled(served, 5)

        open_page(browser, served.url("/queues/0"), "#depth-chart")
        # The page redraws its chart from the server every few seconds; the first drawing
        # may predate the last samples, so wait for the one that shows them all.
        samples, heights, dead_letter_lines = wait_until(
            browser, chart_showing_top("9"), "the chart's scale to reach the deepest sample (9)"
        )
        assert samples >= 5
        assert len(heights) >= 4, "the available line should step through 0, 4, 9, 3 and 5"
        assert dead_letter_lines == 1
        wait_for_stat(browser, 0, "available", "5")
        wait_for_stat(browser, 0, "dead_letters", "2")
        formats = [
            cell.get_attribute("data-format") or ""
            for cell in browser.find_elements(By.CSS_SELECTOR, "#dead-letters pre.body-preview")
        ]
        assert sorted(formats) == ["hex", "json"]
        screenshot(browser, "queue")


def test_send_and_a_typed_purge_through_the_page(browser: WebDriver, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "returns")
    with console([url]) as served:
        open_page(browser, served.url("/queues/0"), "#send-form")
        browser.find_element(By.ID, "send-body").send_keys('{"return": "r-1"}')
        browser.find_element(By.ID, "send-attributes").send_keys("reason=damaged")
        browser.find_element(By.ID, "send-button").click()
        assert "Sent message" in wait_for(browser, "#flash").text
        wait_for_stat(browser, 0, "available", "1")
        [sent] = ops.peek(url)
        assert (sent.body, sent.attributes) == (b'{"return": "r-1"}', {"reason": "damaged"})

        # A purge needs the queue's name typed: a near miss is refused and purges nothing.
        browser.find_element(By.ID, "purge-confirm").send_keys("return")
        browser.find_element(By.ID, "purge-button").click()
        assert "returns" in wait_for(browser, "#error").text
        assert ops.stats(url).available == 1

        open_page(browser, served.url("/queues/0"), "#purge-form")
        browser.find_element(By.ID, "purge-confirm").send_keys("returns")
        browser.find_element(By.ID, "purge-button").click()
        assert "Purged" in wait_for(browser, "#flash").text
        wait_for_stat(browser, 0, "available", "0")
    assert ops.stats(url).available == 0


def test_read_only_shows_no_action_and_refuses_a_forged_post(browser: WebDriver) -> None:
    url = memory_url("read-only")
    name = url.removeprefix("memory://")
    send(url, b"keep me")
    dead_letter(url, b"poison", "cannot parse")
    with console([url], read_only=True) as served:
        open_page(browser, served.url("/queues/0"), "#dead-letters tr.dead-letter")
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-read-only") == "true"
        assert browser.find_element(By.ID, "read-only-banner").is_displayed()
        for selector in ("form.action-form", "button", "input.select-dead-letter", "#purge-form"):
            assert browser.find_elements(By.CSS_SELECTOR, selector) == [], selector

        # A forged purge that passes the cross-site checks (the page's own CSRF cookie and
        # a same-origin Origin) must still be refused because the console is read-only.
        refused = forged_purge(served, name)
        assert refused.status_code == 403
        assert "read-only" in refused.text.lower()
    assert ops.stats(url).available == 1

    # The same request to a console that is not read-only purges: the 403 above came
    # from the read-only mode, not from the forgery being detected.
    with console([url]) as served:
        accepted = forged_purge(served, name)
        assert accepted.status_code == 303
    assert ops.stats(url).available == 0


def forged_purge(served: Served, name: str) -> httpx.Response:
    origin = served.base.rstrip("/")
    with httpx.Client(base_url=origin) as client:
        client.get("/")
        csrf = client.cookies.get("cloudqueue_ui_csrf")
        assert csrf, "the console set no CSRF cookie"
        return client.post(
            "/queues/0/purge",
            data={"csrf_token": csrf, "confirm": name},
            headers={"Origin": origin},
            follow_redirects=False,
        )


def test_a_script_body_is_shown_as_text_and_never_runs(browser: WebDriver) -> None:
    url = memory_url("web")
    script = "<script>window.cloudqueueInjected = true; alert('injected')</script>"
    markup = '<img src=x onerror="window.cloudqueueInjected = true">'
    dead_letter(url, script.encode(), markup, attributes={"note": "<b>bold</b>"})
    with console([url]) as served:
        open_page(browser, served.url("/queues/0"), "#dead-letters tr.dead-letter")
        row = browser.find_element(By.CSS_SELECTOR, "#dead-letters tr.dead-letter")
        assert row.find_element(By.CSS_SELECTOR, "pre.body-preview").text == script
        assert row.find_element(By.CSS_SELECTOR, "td.reason").text == markup
        assert "note=<b>bold</b>" in row.find_element(By.CSS_SELECTOR, "td.attributes").text
        injected = "#dead-letters script, #dead-letters img, #dead-letters b"
        assert browser.find_elements(By.CSS_SELECTOR, injected) == []
        assert no_alert(browser)
        assert browser.execute_script("return window.cloudqueueInjected === undefined")

        row.find_element(By.CSS_SELECTOR, "a.dead-letter-link").click()
        wait_for(browser, "#body")
        assert browser.find_element(By.ID, "body").text == script
        assert browser.find_element(By.ID, "reason").text == markup
        assert browser.find_elements(By.CSS_SELECTOR, "#dead-letter script, #dead-letter img") == []
        assert no_alert(browser)
        assert browser.execute_script("return window.cloudqueueInjected === undefined")


def test_without_the_token_every_request_is_refused(browser: WebDriver) -> None:
    """The token mode a console bound beyond loopback runs in (tests stay on loopback, so
    the token is given to the app explicitly)."""
    url = memory_url("guarded")
    token = "tok-" + unique_name("t")
    with console([url], token=token) as served:
        browser.delete_all_cookies()
        browser.get(served.url("/"))
        wait_for_refusal(browser)
        assert browser.find_elements(By.ID, "destinations") == []
        with httpx.Client(base_url=served.base) as client:
            assert client.get("/api/stats").status_code == 401
            assert client.get("/queues/0", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert client.get("/api/stats", headers={"Authorization": f"Bearer {token}"}).status_code == 200

        # Visiting once with ?token= sets the cookie; later pages need nothing more.
        open_page(browser, served.url(f"/?token={token}"), "#destinations tr.destination")
        assert token not in browser.current_url
        open_page(browser, served.url("/queues/0"), "#queue-name")
        browser.delete_all_cookies()
        browser.get(served.url("/queues/0"))
        wait_for_refusal(browser)


@contextmanager
def cli_console(*arguments: str, cwd: Path) -> Iterator[Served]:
    """`cloudqueue ui` started through its entry point, stopped on exit."""
    with loopback_socket() as probe:  # a free port, given back for the CLI to bind
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(CLOUDQUEUE_CLI), "ui", *arguments, "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:  # ends when the process does
            seen.append(line)
            if line.startswith("cloudqueue ui: serving"):
                break
        else:
            raise AssertionError("cloudqueue ui stopped before serving:\n" + "".join(seen))
        assert f"http://127.0.0.1:{port}/" in seen[-1]
        yield Served(f"http://127.0.0.1:{port}/")
    finally:
        process.terminate()
        process.wait(PATIENCE)


def test_the_cli_shows_the_demo_queue_and_its_dead_letters(browser: WebDriver, tmp_path: Path) -> None:
    """What docs/console.md tells a user to do: `cloudqueue demo`, then `cloudqueue ui` on
    its queue, in the same folder."""
    demo = subprocess.run(
        [str(CLOUDQUEUE_CLI), "demo", "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    summary = re.search(r"(\d+) dead-lettered: reconciled", demo.stdout)
    assert summary, f"no summary line in the demo's output:\n{demo.stdout}"
    dead_lettered = int(summary[1])
    assert dead_lettered > 0, "the demo's default seed dead-letters some orders"
    with cli_console("sqlite:///cloudqueue.db?queue=demo-orders", cwd=tmp_path) as served:
        open_page(browser, served.url("/"), "#destinations tr.destination")
        row = browser.find_element(By.CSS_SELECTOR, "#destinations tr.destination")
        assert cell(row, "td.provider") == "sqlite"
        assert cell(row, "td.name") == "demo-orders"
        wait_for_stat(browser, 0, "available", "0")
        wait_for_stat(browser, 0, "dead_letters", str(dead_lettered))
        row.find_element(By.CSS_SELECTOR, "a.queue-link").click()
        wait_for(browser, "#dead-letters tr.dead-letter")
        rows = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tr.dead-letter")
        assert len(rows) == dead_lettered
        reasons = [cell(row, "td.reason") for row in rows]
        assert all(reason not in ("", "-") for reason in reasons), reasons
        rows[0].find_element(By.CSS_SELECTOR, "a.dead-letter-link").click()
        assert wait_for(browser, "#reason").text == reasons[0]
        screenshot(browser, "dead-letter")
