"""What the console's browser tests stand on: a headless Chromium driven by Selenium, and
the console served by uvicorn on loopback.

The browser is the Debian ``chromium`` package driven through the Debian
``chromium-driver`` (paths overridable with CLOUDQUEUE_CHROMIUM and
CLOUDQUEUE_CHROMEDRIVER). It runs as root (without Chromium's sandbox, which root cannot
have) and as a normal user (with it). The driver's path is always given to Selenium, which then skips
Selenium Manager, so nothing is downloaded while the tests run.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CLOUDQUEUE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CLOUDQUEUE_CHROMEDRIVER", "/usr/bin/chromedriver")
NO_SANDBOX_ENV = "CLOUDQUEUE_CHROMIUM_NO_SANDBOX"

# Waits are for conditions in the page, never assertions about time: this is only how
# long a condition may take on a loaded 2-core CI machine before the test gives up.
PATIENCE = 20.0

# Screenshots for docs/console.md are taken only when asked, so a CI run leaves the
# working tree as it found it.
SCREENSHOTS_ENV = "CLOUDQUEUE_UI_SCREENSHOTS"
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"

T = TypeVar("T")


def _require(path: str, package: str, variable: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(
            f"{path} is not an executable file: install the Debian package {package} "
            f"(apt-get install {package}) or point {variable} at the binary"
        )
    return path


def chrome_options(profile: str) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = _require(CHROMIUM, "chromium", "CLOUDQUEUE_CHROMIUM")
    if os.geteuid() == 0 or os.environ.get(NO_SANDBOX_ENV) == "1":
        # Chromium refuses to start its sandbox as root (CI containers run as root); a
        # normal user keeps it unless the machine lacks user namespaces (then set the
        # variable). The browser only ever loads the console on 127.0.0.1.
        options.add_argument("--no-sandbox")
    for argument in (
        "--headless=new",
        # Docker-style /dev/shm is 64 MB, too small for Chromium's shared memory.
        "--disable-dev-shm-usage",
        "--disable-gpu",
        # Nothing reaches beyond loopback: no first-run pages, updates or field trials.
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    return options


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium with its own throw-away profile, quit on exit."""
    service = Service(executable_path=_require(CHROMEDRIVER, "chromium-driver", "CLOUDQUEUE_CHROMEDRIVER"))
    profile = tempfile.mkdtemp(prefix="cloudqueue-chromium-")
    try:
        driver = webdriver.Chrome(service=service, options=chrome_options(profile))
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """The first truthy value of ``condition(driver)``; fails naming ``what`` was awaited."""
    # An element the page's refresh replaced (the chart) or has not drawn yet is a
    # condition not met yet, not an error.
    waiting = WebDriverWait(
        driver, PATIENCE, poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return waiting.until(condition, message=f"waited {PATIENCE:.0f} s for {what}")


def screenshot(driver: WebDriver, name: str) -> None:
    """Save the page as docs/images/console-<name>.png when CLOUDQUEUE_UI_SCREENSHOTS=1."""
    if os.environ.get(SCREENSHOTS_ENV) != "1":
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    target = IMAGES / f"console-{name}.png"
    if not driver.save_screenshot(str(target)):
        raise RuntimeError(f"Chromium could not write the screenshot {target}")


def loopback_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 with a port of the kernel's choosing (no race
    between choosing a free port and binding it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@dataclass(frozen=True)
class Served:
    """A console being served: its base URL (ending in ``/``)."""

    base: str

    def url(self, path: str = "") -> str:
        return self.base + path.lstrip("/")


@contextmanager
def serve_in_thread(app: Any) -> Iterator[Served]:
    """``app`` served by uvicorn in a thread of this process, so memory:// queues the
    test fills are the ones the console shows."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started serving the console")
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start serving within {PATIENCE:.0f} s")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}/")
    finally:
        server.should_exit = True
        thread.join(PATIENCE)
        sock.close()
