"""The order-processing demo: it reconciles, is deterministic per seed, and runs from the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cloudqueue
from cloudqueue.cli import main
from cloudqueue.demo import DEAD_LETTER_AFTER, STAGES, Report, run_demo
from cloudqueue.demo._shop import Shop
from cloudqueue.testing.contract import unique_name


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{unique_name('demo')}"
    return f"sqlite:///{tmp_path}/demo.db?queue=orders"


def test_every_order_ships_or_is_dead_lettered_where_the_plan_says(url: str) -> None:
    report = run_demo(url, orders=20, seed=42, timeout=60)
    plan = Shop.generate(20, 42)
    assert not report.timed_out
    assert report.reconciled
    assert {order: stage for stage in STAGES for order in report.stages[stage].dead_lettered} == plan.poison
    assert report.shipped == {order for order, _ in plan.orders} - set(plan.poison)
    # Every transient failure planned below the dead-letter limit was retried, and
    # every poison message was retried until its last attempt.
    for stage in STAGES:
        planned = sum(plan.services[stage].failures.get(o, 0) for o in report.stages[stage].processed)
        poison_retries = (DEAD_LETTER_AFTER - 1) * len(report.stages[stage].dead_lettered)
        assert report.stages[stage].retried == planned + poison_retries
    # Nothing is left on the queue; the dead letters stay, with their reasons, for the
    # operations tools (cloudqueue dlq, redrive, ui) to show.
    with cloudqueue.open_consumer(url) as consumer:
        assert consumer.receive(wait=0.2) == []
    kept = cloudqueue.ops.dead_letters(url, max_messages=100)
    assert sorted(letter.attributes["order_id"] for letter in kept) == sorted(plan.poison)
    assert all(letter.dead_letter is not None for letter in kept)


def _counts(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines() if line.split()[0] in STAGES]


def test_same_seed_same_counts_and_another_seed_differs() -> None:
    first = run_demo(f"memory://{unique_name('seed')}", orders=30, seed=5)
    again = run_demo(f"memory://{unique_name('seed')}", orders=30, seed=5)
    other = run_demo(f"memory://{unique_name('seed')}", orders=30, seed=6)
    assert _counts(first.table()) == _counts(again.table())
    assert _counts(first.table()) != _counts(other.table())


def test_cli_demo_prints_the_table_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--url", f"memory://{unique_name('cli')}", "--orders", "12"])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"attempt 2/3 failed: .*; retry in 0\.10s", out)
    assert "dead letter" in out
    assert re.search(r"orders: 12 placed, \d+ shipped, \d+ dead-lettered: reconciled", out)
    for stage in STAGES:
        assert re.search(rf"^{stage}\s+\d+\s+\d+\s+\d+$", out, re.MULTILINE)


def test_a_pipeline_that_does_not_drain_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--url", f"memory://{unique_name('late')}", "--timeout", "0", "-q"])
    assert code == 1
    assert "NOT reconciled (timed out" in capsys.readouterr().out


def test_report_refuses_to_reconcile_a_lost_or_doubled_order() -> None:
    report = Report("memory://x", "memory://x-dlq", ["a", "b"])
    for stage in STAGES:
        report.stages[stage].processed = {"a", "b"}
    report.shipped = {"a"}
    assert not report.reconciled  # b vanished
    report.shipped = {"a", "b"}
    assert report.reconciled
    report.stages["ship"].dead_lettered = {"b"}
    assert not report.reconciled  # b both shipped and dead-lettered


def test_demo_on_the_default_backend_in_a_fresh_directory(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "CLOUDQUEUE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "cloudqueue", "demo", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "reconciled" in done.stdout
    assert "on sqlite:///cloudqueue.db?queue=demo-orders" in done.stdout
    assert (tmp_path / "cloudqueue.db").exists()


def test_readme_example_runs_on_memory() -> None:
    example = Path(__file__).parent.parent / "examples" / "quickstart.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "b'payload' {'kind': 'created'} attempt 1" in done.stdout
    assert "dead letter: b'a' {'dead_letter_reason': 'shown in the dead-letter queue'}" in done.stdout
