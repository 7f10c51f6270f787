"""Run every benchmark in bench/ whose server is available; write docs/benchmarks.md and its chart.

::

    python bench/run_all.py [--quick] [--only NAME ...] [--json results.json]
    python bench/run_all.py --replot results.json     # redraw the page from a saved run

Each benchmark runs as its own process (as a user runs it by hand), one after the other, so
none disturbs another's figures. Its printed report is echoed here and kept; its figures
arrive through ``bench/_report.py`` (a JSON line per figure, in the file named by
``$CLOUDQUEUE_BENCH_REPORT``). The page holds one table (the best cloudqueue variant of each
workload beside its baseline), the targets each benchmark checks, every figure, and why a
benchmark did not run or failed; the chart shows the same pairs.

Servers: memory, SQLite, the worker, codecs and telemetry need none. Pub/Sub and Service Bus
start their local servers in-process. RabbitMQ needs the system's ``rabbitmq-server``
(``$CLOUDQUEUE_RABBITMQ_URL`` reuses a running broker). SQS, SNS and offload (S3) share one
LocalStack started here from ``.venv-localstack`` (``python -m cloudqueue_sqs.testing install
--venv .venv-localstack`` makes it), unless ``$CLOUDQUEUE_SQS_ENDPOINT`` names a running one.

``--quick`` runs every benchmark on a fraction of its messages and rounds (a few minutes in
all on two cores): enough to see where things stand, noisier than the default run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _report import REPORT_ENV

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PAGE = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "images" / "benchmarks.png"
LOCALSTACK_VENV = ROOT / ".venv-localstack"
SQS_ENDPOINT_ENV = "CLOUDQUEUE_SQS_ENDPOINT"
RABBITMQ_URL_ENV = "CLOUDQUEUE_RABBITMQ_URL"
#: What bench/_ops_workload.py reports from every provider's benchmark.
_OPERATIONS_WORKLOADS = ("redrive dead letters",)


# -- what to run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    name: str  # bench/bench_<name>.py
    quick: tuple[str, ...]  # arguments of --quick; the default run passes none
    modules: tuple[str, ...] = ()  # what it imports beyond cloudqueue (a missing one: not run)
    server: str = ""  # "localstack" or "rabbitmq": started or found by run_all


BENCHMARKS = (
    Benchmark("memory", ("--messages", "2000", "--flow", "0"), ("kombu",)),
    Benchmark("sqlite", ("--messages", "2000", "--single", "300", "--baseline", "200",
                         "--repeats", "2"), ("persistqueue",)),
    Benchmark("worker", ("--messages", "2000", "--rounds", "2")),
    Benchmark("ops", ("--messages", "1000", "--repeats", "1")),
    Benchmark("codecs", ("--messages", "2000", "--rounds", "3"), ("pydantic", "msgspec")),
    Benchmark("telemetry", ("--messages", "2000", "--rounds", "2"), ("opentelemetry.sdk",)),
    Benchmark("pubsub", ("--messages", "1000", "--rounds", "1"), ("cloudqueue_pubsub",)),
    Benchmark("servicebus", ("--count", "500", "--redrive", "200", "--rounds", "1"),
              ("cloudqueue_azure_servicebus",)),
    Benchmark("rabbitmq", ("--messages", "2000", "--repeat", "1"), ("cloudqueue_rabbitmq",),
              "rabbitmq"),
    Benchmark("sqs", ("--messages", "300", "--repeat", "1", "--redrive-messages", "300"),
              ("cloudqueue_sqs", "boto3"), "localstack"),
    Benchmark("sns", ("--messages", "300", "--repeat", "1"), ("cloudqueue_sqs", "boto3"),
              "localstack"),
    Benchmark("offload", ("--messages", "20", "--repeat", "1"), ("cloudqueue_sqs", "boto3"),
              "localstack"),
)


@dataclass
class Outcome:
    """What one benchmark gave: its status, why it did not run or failed, what it printed."""

    name: str
    status: str  # "ok", "failed", "not run"
    why: str = ""
    seconds: float = 0.0
    output: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)


def missing_requirement(benchmark: Benchmark) -> str:
    """Why ``benchmark`` cannot run here, or "" if it can."""
    for module in benchmark.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"Python module {module!r} is not installed"
    if benchmark.server == "rabbitmq" and not os.environ.get(RABBITMQ_URL_ENV):
        from cloudqueue_rabbitmq.testing import RabbitMqServerError, find_rabbitmq_server

        try:
            find_rabbitmq_server()
        except RabbitMqServerError as error:
            return str(error)
    if benchmark.server == "localstack" and not os.environ.get(SQS_ENDPOINT_ENV):
        from cloudqueue_sqs.testing import is_installed

        if not is_installed(LOCALSTACK_VENV):
            return (f"no LocalStack venv at {LOCALSTACK_VENV.name} (python -m cloudqueue_sqs.testing "
                    f"install --venv {LOCALSTACK_VENV.name}) and ${SQS_ENDPOINT_ENV} is not set")
    return ""


@contextlib.contextmanager
def shared_localstack(needed: bool) -> Iterator[str]:
    """One LocalStack for every benchmark that needs it (each would otherwise start its own):
    yields "" when it is running (or not needed), else why it could not start."""
    if not needed or os.environ.get(SQS_ENDPOINT_ENV):
        yield ""
        return
    from cloudqueue_sqs.testing import LocalStack, LocalStackError

    server = LocalStack(LOCALSTACK_VENV, use_env=False)
    try:
        server.start()
    except LocalStackError as error:
        yield f"LocalStack did not start: {str(error).splitlines()[0]}"
        return
    os.environ[SQS_ENDPOINT_ENV] = server.endpoint_url
    try:
        yield ""
    finally:
        del os.environ[SQS_ENDPOINT_ENV]
        server.stop()


def run_one(benchmark: Benchmark, quick: bool, timeout: float) -> Outcome:
    """Run ``bench_<name>.py``, echoing its output, and gather the figures it reported."""
    arguments = list(benchmark.quick if quick else ())
    with tempfile.TemporaryDirectory(prefix="bench-report-") as folder:
        report = Path(folder) / "report.jsonl"
        env = {**os.environ, REPORT_ENV: str(report), "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        # Its own session: on a timeout the whole group goes (servers it started included).
        process = subprocess.Popen(
            [sys.executable, str(BENCH / f"bench_{benchmark.name}.py"), *arguments],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            print(f"  [{benchmark.name}] {line}", end="", flush=True)
            lines.append(line)
        code = process.wait()
        timer.cancel()
        seconds = time.perf_counter() - started
        records = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    output = "".join(lines)
    outcome = Outcome(benchmark.name, "ok", "", seconds, output, records)
    if timed_out.is_set():
        outcome.status, outcome.why = "failed", f"stopped after the {timeout:g} s time limit"
    elif code != 0:
        outcome.status, outcome.why = "failed", f"exit code {code}: {last_error_line(output)}"
    outcome.records.extend(printed_figures_not_reported(benchmark.name, output, records))
    return outcome


def printed_figures_not_reported(
    name: str, output: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The figures and bars a benchmark printed, if it handed none of its own to _report. The
    shared redrive workload reports itself (through _ops_workload) from benchmarks that only
    print the rest, so its figures do not count as the benchmark's own."""
    own = [r for r in records if r["type"] == "figure" and r["workload"] not in _OPERATIONS_WORKLOADS]
    if own or name not in _PRINTED:
        return []
    reported_bars = {r["label"] for r in records if r["type"] == "bar"}
    return [r for r in figures_from_output(name, output)
            if r["type"] == "figure" or r["label"] not in reported_bars]


def last_error_line(output: str) -> str:
    """The line of a traceback or argparse error that says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^(\w+\.)*\w*(Error|Exception|Exit)\b|^error:|: error:", line):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


# -- figures from printed output, for benchmarks that do not call _report yet ------------

# "label   12.34x  (bar 10x: met)" and "label: 0.301  (bar <= 0.35: met)", as bench_memory,
# bench_sqlite, bench_sqs and bench_worker print their checks.
_BAR_LINE = re.compile(
    r"(?P<value>\d+(?:\.\d+)?)x?\s+\(bar (?P<at_most><=\s*)?(?P<bar>\d+(?:\.\d+)?)x?\b"
)
_FIGURE_LINE = re.compile(r"^\s*(?P<label>\S.*?):?\s{2,}(?P<value>\d[\d,]*(?:\.\d+)?)(?:\s|$)")

# bench file -> (provider, workload) -> printed label -> (variant, kind). Only the labels these
# files print today; a benchmark that reports through _report never comes here.
# The names bench_memory, bench_sqlite and bench_sqs report under (so rows line up either way).
_BATCHED, _SINGLE, _ROUND_TRIPS = "batched round trips", "one-at-a-time round trips", "send+receive+ack"
_PERSIST_QUEUE = "persist-queue SQLiteAckQueue, put/get/ack one at a time"
_PRINTED: dict[str, dict[tuple[str, str], dict[str, tuple[str, str]]]] = {
    "memory": {
        ("memory", _BATCHED): {
            "cloudqueue batched (sync)": ("cloudqueue (sync)", "cloudqueue"),
            "cloudqueue batched (async)": ("cloudqueue (asyncio)", "cloudqueue"),
            "kombu batched": ("kombu memory transport", "baseline"),
        },
        ("memory", _SINGLE): {
            "cloudqueue one-at-a-time (sync)": ("cloudqueue (sync)", "cloudqueue"),
            "cloudqueue one-at-a-time (async)": ("cloudqueue (asyncio)", "cloudqueue"),
            "kombu one-at-a-time": ("kombu memory transport", "baseline"),
            "bare deque loop": ("bare deque + dict (no API)", "reference"),
        },
        ("memory", "backlog drain"): {
            "cloudqueue backlog, 100 ordering keys": ("cloudqueue, 100 ordering keys", "cloudqueue"),
            "cloudqueue backlog, no keys": ("cloudqueue, no keys", "cloudqueue"),
        },
    },
    "sqlite": {
        ("sqlite", _ROUND_TRIPS): {
            _PERSIST_QUEUE: ("persist-queue SQLiteAckQueue (one at a time)", "baseline"),
            "cloudqueue sqlite, batched (100 per batch)": ("cloudqueue, batched (100)", "cloudqueue"),
            "cloudqueue sqlite, one at a time": ("cloudqueue, one at a time", "cloudqueue"),
        },
    },
    "sqs": {
        ("sqs", _ROUND_TRIPS): {
            "cloudqueue (sync)": ("cloudqueue (sync)", "cloudqueue"),
            "cloudqueue.aio (worker threads)": ("cloudqueue (asyncio)", "cloudqueue"),
            "boto3 loop, batched by 10": ("boto3 loop, batched by 10", "baseline"),
            "aiobotocore loop, batched by 10": ("aiobotocore loop, batched by 10", "reference"),
            "boto3 loop, one call per message": ("boto3 loop, one call per message", "reference"),
        },
    },
    "worker": {
        ("worker", "no-op plain handler"): {
            "raw consumer loop, blocking (receive 100, ack)": ("blocking raw loop", "baseline"),
            "worker, no-op plain handler, 8 threads": ("cloudqueue worker, 8 threads", "cloudqueue"),
        },
        ("worker", "no-op coroutine handler"): {
            "raw consumer loop, asyncio (receive 100, ack)": ("asyncio raw loop", "baseline"),
            "worker, no-op coroutine handler, concurrency 100":
                ("cloudqueue worker, concurrency 100", "cloudqueue"),
        },
    },
}


def figures_from_output(name: str, output: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for line in output.splitlines():
        bar = _BAR_LINE.search(line)
        if bar is not None:
            label = re.split(r"\s{2,}", line[: bar.start()].strip())[0].rstrip(":")
            limit = float(bar["bar"])
            found.append({"type": "bar", "label": f"{name}: {label}", "value": float(bar["value"]),
                          "at_least": None if bar["at_most"] else limit,
                          "at_most": limit if bar["at_most"] else None})
        match = _FIGURE_LINE.match(line)
        if match is None:
            continue
        for (provider, workload), entries in _PRINTED.get(name, {}).items():
            if match["label"].strip() not in entries:
                continue
            variant, kind = entries[match["label"].strip()]
            found.append({"type": "figure", "provider": provider, "workload": workload,
                          "variant": variant, "kind": kind, "value": float(match["value"].replace(",", "")),
                          "unit": "msg/s", "from": "printed output"})
    return found


# -- the machine and the code measured ----------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kilobytes = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kilobytes / 1024 / 1024:.1f} GiB RAM"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "machine": f"{cpu}, {os.cpu_count()} cores{memory}",
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "load": f"load average at start {load} (a shared machine: other work may run beside the benchmarks)",
    }


def commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("log", "-1", "--format=%h of %cd", "--date=format:%Y-%m-%d %H:%M") or "unknown"
    changed = [line for line in git("status", "--porcelain", "--", "src", "providers", "bench").splitlines()
               if not line.startswith("??")]
    return head + (f", with uncommitted changes in {len(changed)} files" if changed else "")


# -- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One workload: its best cloudqueue variant beside its best baseline."""

    provider: str
    workload: str
    unit: str
    ours: tuple[str, float] | None
    baseline: tuple[str, float] | None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or self.baseline[1] <= 0:
            return None
        return self.ours[1] / self.baseline[1]


def pairs(figures: list[dict[str, Any]]) -> list[Pair]:
    """The best cloudqueue and best baseline figure of each (provider, workload), in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in figures:
        groups.setdefault((record["provider"], record["workload"]), []).append(record)

    def best(records: list[dict[str, Any]], kind: str) -> tuple[str, float] | None:
        chosen = [r for r in records if r["kind"] == kind]
        top = max(chosen, key=lambda r: r["value"], default=None)
        return None if top is None else (top["variant"], top["value"])

    providers = list(dict.fromkeys(provider for provider, _ in groups))
    # A provider's messaging workloads first, the shared operations workload after them.
    ordered = sorted(groups.items(), key=lambda item: (providers.index(item[0][0]),
                                                       item[0][1] in _OPERATIONS_WORKLOADS))
    return [Pair(provider, workload, records[0]["unit"], best(records, "cloudqueue"),
                 best(records, "baseline"))
            for (provider, workload), records in ordered]


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


#: Where docs/performance.md explains a bar this design cannot meet, by the start of
#: the bar's label: a missed bar's verdict links there.
WHY_MISSED = {
    "memory one-at-a-time": "performance.md#memory-one-message-at-a-time-bar-2x-kombu",
    "sqlite batched": "performance.md#sqlite-against-persist-queue-bars-100x-batched-5x-one-at-a-time",
    "sqlite single": "performance.md#sqlite-against-persist-queue-bars-100x-batched-5x-one-at-a-time",
    "sqs: redrive": "performance.md#redrive-on-sqs-pubsub-and-service-bus-bar-08x-a-batched-send",
    "pubsub: redrive": "performance.md#redrive-on-sqs-pubsub-and-service-bus-bar-08x-a-batched-send",
    "servicebus: redrive": "performance.md#redrive-on-sqs-pubsub-and-service-bus-bar-08x-a-batched-send",
    "sns: send_batch": "performance.md#sns-publish-bar-09x-boto3-publish_batch",
}


def bar_row(record: dict[str, Any]) -> str:
    if record["at_least"] is not None:
        target, met = f">= {record['at_least']:g}", record["value"] >= record["at_least"]
    else:
        target, met = f"<= {record['at_most']:g}", record["value"] <= record["at_most"]
    verdict = "met"
    if not met:
        why = next((link for start, link in WHY_MISSED.items()
                    if record["label"].startswith(start)), None)
        verdict = "**missed**" if why is None else f"**missed** ([why]({why}))"
    return f"| {record['label']} | {record['value']:.3g} | {target} | {verdict} |"


def page(run: dict[str, Any], chart_name: str) -> str:
    outcomes = [Outcome(**outcome) for outcome in run["outcomes"]]
    figures = [r for o in outcomes for r in o.records if r["type"] == "figure"]
    bars = [r for o in outcomes for r in o.records if r["type"] == "bar"]
    lines = [
        "# Benchmarks",
        "",
        "Where cloudqueue stands against the official SDKs and peer libraries, measured by the",
        "scripts in [`bench/`](../bench) and gathered by `python bench/run_all.py` (this page and",
        "its chart are written by that script: edit the script, not the page). Every benchmark",
        "runs its workloads in one process, taking turns, so a ratio compares like with like;",
        "the absolute rates depend on the machine, and the network providers talk to local",
        "servers (LocalStack, the in-process Pub/Sub and Service Bus servers, a private RabbitMQ",
        "node), so they measure the client side and those servers, not the clouds.",
        "",
        f"- **Run**: {run['date']}, {run['mode']}, {run['seconds'] / 60:.1f} minutes",
        f"- **Commit**: {run['commit']}",
        f"- **Machine**: {run['machine']['machine']}; {run['machine']['system']}",
        f"- **Load**: {run['machine']['load']}",
        "",
        f"![Throughput of cloudqueue beside its baseline, per provider and workload]({chart_name})",
        "",
        "## cloudqueue beside its baseline",
        "",
        "The fastest cloudqueue variant of each workload and the fastest baseline (a peer library",
        "or a careful hand-written loop on the official SDK); ratio = cloudqueue / baseline.",
        "",
        "| Provider | Workload | cloudqueue | rate | Baseline | rate | Ratio |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for pair in pairs(figures):
        ours = pair.ours or ("-", 0.0)
        base = pair.baseline or ("-", 0.0)
        ratio = f"{pair.ratio:.2f}x" if pair.ratio is not None else "-"
        unit = "" if pair.unit == "msg/s" else f" ({pair.unit})"
        ours_rate = rate(ours[1]) if pair.ours else "-"
        base_rate = rate(base[1]) if pair.baseline else "-"
        lines.append(f"| {pair.provider} | {pair.workload}{unit} | {ours[0]} | {ours_rate} "
                     f"| {base[0]} | {base_rate} | {ratio} |")
    lines += ["", "Rates are messages per second unless the workload says otherwise (best round of",
              "each benchmark's own repeats).", ""]
    if bars:
        lines += ["## Targets the benchmarks check", "",
                  "A missed bar that this design cannot meet links to its explanation in",
                  "[performance.md](performance.md): where the time goes, and what would change it.",
                  "",
                  "| Target | Measured | Bar | Verdict |", "|---|---:|---|---|"]
        lines += [bar_row(record) for record in bars]
        lines.append("")
    lines += ["## Every figure", "",
              "| Provider | Workload | Variant | Kind | Rate |", "|---|---|---|---|---:|"]
    for record in figures:
        note = " (from printed output)" if record.get("from") else ""
        lines.append(f"| {record['provider']} | {record['workload']} | {record['variant']}{note} | "
                     f"{record['kind']} | {rate(record['value'])} {record['unit']} |")
    lines += ["", "Kinds: *cloudqueue* through the public API; *baseline* what it is compared with;",
              "*reference* shown for scale only (a bare data structure, a naive loop).", "",
              "## Benchmarks run", "", "| Benchmark | Status | Time | Note |", "|---|---|---:|---|"]
    for outcome in outcomes:
        note = outcome.why.replace("|", "\\|")
        lines.append(f"| `bench/bench_{outcome.name}.py` | {outcome.status} "
                     f"| {outcome.seconds:.0f} s | {note} |")
    lines += ["", "## Printed reports", "", "What each benchmark printed in this run (its bars and ratios",
              "in its own words):", ""]
    for outcome in outcomes:
        if outcome.output.strip():
            lines += [f"<details><summary><code>bench_{outcome.name}.py</code></summary>", "", "```text",
                      outcome.output.rstrip(), "```", "", "</details>", ""]
    lines += ["## Running it", "", "```sh",
              ".venv/bin/python bench/run_all.py --quick        # a few minutes: fewer messages and rounds",
              ".venv/bin/python bench/run_all.py                # each benchmark with its defaults",
              ".venv/bin/python bench/run_all.py --only memory sqlite --page /tmp/b.md --chart /tmp/b.png",
              "```", "",
              "Each benchmark also runs on its own (`python bench/bench_memory.py --help`); its",
              "docstring says what it compares and why the comparison is fair.", ""]
    return "\n".join(lines)


def draw_chart(figures: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars, cloudqueue beside its baseline per workload, on a log scale: the rates
    span from a few 1 MB messages to hundreds of thousands of in-memory ones a second."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = [pair for pair in pairs(figures) if pair.ours is not None or pair.baseline is not None]
    height = 0.38
    figure, axis = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.6), dpi=100)
    for index, pair in enumerate(rows):
        y = len(rows) - 1 - index
        for offset, entry, colour in ((height / 2, pair.ours, "tab:blue"),
                                      (-height / 2, pair.baseline, "tab:gray")):
            if entry is None:
                continue
            axis.barh(y + offset, entry[1], height=height, color=colour)
            ratio = f"  = {pair.ratio:.2f}x" if entry is pair.ours and pair.ratio is not None else ""
            axis.annotate(f" {rate(entry[1])}  {entry[0]}{ratio}", (entry[1], y + offset), va="center",
                          fontsize=7)
    unit = {pair.unit for pair in rows}
    labels = [f"{pair.provider}: {pair.workload}" + ("" if pair.unit == "msg/s" else f" ({pair.unit})")
              for pair in rows]
    axis.set_yticks(range(len(rows)), list(reversed(labels)), fontsize=8)
    axis.set_xscale("log")
    values = [entry[1] for pair in rows for entry in (pair.ours, pair.baseline) if entry is not None]
    if values:
        axis.set_xlim(min(values) / 2, max(values) * 500)  # room for the labels right of the bars
    axis.set_xlabel("messages per second (log scale)" + (", or as the row says" if len(unit) > 1 else ""))
    axis.set_title("cloudqueue beside its baseline, best round of each")
    axis.legend(handles=[Patch(color="tab:blue", label="cloudqueue (fastest variant)"),
                         Patch(color="tab:gray", label="baseline (fastest)")],
                loc="lower right", fontsize=8)
    axis.grid(axis="x", alpha=0.3, which="both")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def write(run: dict[str, Any], page_path: Path, chart_path: Path) -> None:
    figures = [r for o in run["outcomes"] for r in o["records"] if r["type"] == "figure"]
    draw_chart(figures, chart_path)
    chart_name = os.path.relpath(chart_path, page_path.parent)
    page_path.write_text(page(run, chart_name), encoding="utf-8")
    print(f"wrote {page_path} and {chart_path}")


# -- the command -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds (minutes)")
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these ({', '.join(names)})")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per benchmark before it is stopped "
                             "(default 300, or 1200 without --quick)")
    parser.add_argument("--json", type=Path, help="also save the run (figures, outputs, machine) here")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="write the page from a saved run; run nothing")
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args(argv)
    if args.replot:
        write(json.loads(args.replot.read_text()), args.page, args.chart)
        return 0
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    timeout = args.timeout or (300.0 if args.quick else 1200.0)
    run = run_all(chosen, args.quick, timeout)
    if args.json:
        args.json.write_text(json.dumps(run, indent=1))
    write(run, args.page, args.chart)
    failed = [o["name"] for o in run["outcomes"] if o["status"] == "failed"]
    print(f"failed: {', '.join(failed)}" if failed else "every benchmark that could run did")
    return 1 if failed else 0


def run_all(chosen: list[Benchmark], quick: bool, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()  # the load before the benchmarks add theirs
    measured = commit()  # the code as it was when the run began
    missing = {b.name: missing_requirement(b) for b in chosen}
    runnable_on_localstack = any(b.server == "localstack" and not missing[b.name] for b in chosen)
    outcomes: list[Outcome] = []
    with shared_localstack(runnable_on_localstack) as localstack_problem:
        for benchmark in chosen:
            why = missing[benchmark.name] or (localstack_problem if benchmark.server == "localstack" else "")
            if why:
                print(f"- {benchmark.name}: not run: {why}")
                outcomes.append(Outcome(benchmark.name, "not run", why))
                continue
            print(f"- {benchmark.name}: bench/bench_{benchmark.name}.py", flush=True)
            outcomes.append(run_one(benchmark, quick, timeout))
    return {
        "date": date,
        "mode": "--quick (fewer messages and rounds)" if quick else "each benchmark's default size",
        "commit": measured,
        "machine": info,
        "seconds": time.perf_counter() - started,
        "outcomes": [asdict(outcome) for outcome in outcomes],
    }


if __name__ == "__main__":
    sys.exit(main())
