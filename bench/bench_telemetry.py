"""What cloudqueue's OpenTelemetry costs, on the memory provider, in one run.

Run: ``python bench/bench_telemetry.py [--messages N] [--rounds N]``. Telemetry is decided
once per process, so each mode runs in its own interpreter; the modes take turns for
``--rounds`` rounds (a noisy neighbour slows all alike) and the best rate of each counts:

- ``off``: ``CLOUDQUEUE_TELEMETRY=off``, the same code path as without the API installed;
- ``api``: the OpenTelemetry API installed, no SDK configured (no-op spans and metrics);
- ``sdk``: the SDK with every span exported (to an exporter that drops it) and every
  metric aggregated: the overhead per message a traced application pays.

Bar (issue 13): ``api`` within 5% of ``off``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import _report

_CHILD = """
import itertools, json, sys
sys.path.insert(0, {bench!r})
mode, count = sys.argv[1], int(sys.argv[2])
if mode == "sdk":
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
from _workloads import batched_round_trips, best, rates, single_round_trips
names = itertools.count()
url = lambda: f"memory://bench-{{next(names)}}"
# The first producer decides telemetry once per process, importing OpenTelemetry in the
# api and sdk modes (30-100 ms, as long as a whole timed run): done here, untimed, so that
# every timed run of every mode counts, not all but the first.
single_round_trips(url(), 10)
found = rates({{
    "single": (count // 10, lambda n: single_round_trips(url(), n)),
    "batched": (count, lambda n: batched_round_trips(url(), n)),
}}, repeats=2)
print(json.dumps(best(found)))
"""

MODES = ("off", "api", "sdk")


def run_child(mode: str, count: int) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("CLOUDQUEUE_TELEMETRY", None)
    if mode == "off":
        env["CLOUDQUEUE_TELEMETRY"] = "off"
    script = _CHILD.format(bench=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", script, mode, str(count)], env=env, capture_output=True,
        text=True, check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found: dict[str, dict[str, float]] = {mode: {} for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            for workload, rate in run_child(mode, args.messages).items():
                found[mode][workload] = max(found[mode].get(workload, 0.0), rate)
    print(f"{'workload':<10}" + "".join(f"{mode + ' msg/s':>14}" for mode in MODES)
          + f"{'api/off':>10}{'sdk us/msg':>12}")
    for workload in ("single", "batched"):
        off, api, sdk = (found[mode][workload] for mode in MODES)
        extra = (1 / sdk - 1 / off) * 1e6
        print(f"{workload:<10}{off:>14,.0f}{api:>14,.0f}{sdk:>14,.0f}{api / off:>10.3f}{extra:>12.1f}")
    titles = {"off": "telemetry off", "api": "OpenTelemetry API, no SDK",
              "sdk": "OpenTelemetry SDK, every span exported"}
    for workload, title in (("single", "one at a time"), ("batched", "batched by 100")):
        for mode in MODES:
            kind: _report.Kind = "baseline" if mode == "off" else "cloudqueue"
            _report.figure("telemetry", f"memory send + receive + ack, {title}", titles[mode],
                           found[mode][workload], kind=kind)
    worst = min(found["api"][w] / found["off"][w] for w in ("single", "batched"))
    _report.bar("telemetry: API installed vs off (worst workload)", worst, at_least=0.95)
    print(f"bar: api within 5% of off: {'met' if worst >= 0.95 else 'NOT met'} (worst {worst:.3f})")


if __name__ == "__main__":
    main()
