"""Graceful shutdown of a worker process under load: SIGTERM, then count every message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cloudqueue

APP = textwrap.dedent("""
    import os, time
    from cloudqueue.worker import App
    app = App(concurrency=8)
    log = open(os.environ["DONE_LOG"], "a", buffering=1)

    @app.handler(os.environ["QUEUE_URL"])
    def handle(message):
        time.sleep(float(os.environ["HANDLER_SECONDS"]))
        log.write(message.text() + "\\n")   # written before the ack: at-least-once
""")


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_under_load_loses_nothing(tmp_path: Path, signals: int) -> None:
    url = f"sqlite:///{tmp_path}/load.db?queue=jobs"
    cloudqueue.declare(url, lease=2.0)
    sent = [f"job-{i}" for i in range(600)]
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(body) for body in sent])
    (tmp_path / "loadapp.py").write_text(APP)
    done_log = tmp_path / "done.log"
    # Forced stops need handlers still running when the second signal comes.
    handler_seconds, started_with = (0.02, 50) if signals == 1 else (0.5, 8)
    env = {**os.environ, "QUEUE_URL": url, "DONE_LOG": str(done_log), "HANDLER_SECONDS": str(handler_seconds)}
    worker = subprocess.Popen([sys.executable, "-m", "cloudqueue", "run", "loadapp:app", "--grace", "10"],
                              cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not done_log.exists() or len(done_log.read_text().splitlines()) < started_with:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.02)
    for _ in range(signals):
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == (0 if signals == 1 else 1), stderr
    assert "total: processed=" in stderr
    processed = done_log.read_text().splitlines()
    assert len(processed) < len(sent)  # it really stopped mid-load
    remaining: list[str] = []
    with cloudqueue.open_consumer(url) as consumer:
        # Handed out but unsettled (forced stop) messages return when their 2 s lease ends.
        while batch := consumer.receive(100, wait=3.0):
            for message in batch:
                remaining.append(message.text())
                message.ack()
    assert set(processed) | set(remaining) == set(sent)  # none lost
    if signals == 1:
        # Graceful: every handler finished and was acked, so nothing ran twice.
        assert not set(processed) & set(remaining)
        assert len(processed) == len(set(processed))
