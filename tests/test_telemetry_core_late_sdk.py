"""An application that configures the OpenTelemetry SDK after its producer and consumer
exist still gets their spans: with the API alone cloudqueue skips telemetry per call
(a no-op costs nothing), and it must notice the SDK when one arrives.

Providers can be set once per process, so the scenario runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

_SCENARIO = """
import json, time
import cloudqueue
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

url = "memory://late-sdk"
cloudqueue.declare(url)
producer, consumer = cloudqueue.open_producer(url), cloudqueue.open_consumer(url)

def round_trip(body):
    producer.send(body)
    (message,) = consumer.receive(1, wait=5)
    message.ack()
    return message

before = round_trip(b"before")
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
# "No SDK" is looked at again at most once a second: keep going until spans come.
deadline, sent = time.monotonic() + 30, 0
while not exporter.get_finished_spans() and time.monotonic() < deadline:
    round_trip(b"waiting")
    sent += 1
exporter.clear()
after = round_trip(b"after")
producer.close(); consumer.close()
print(json.dumps({
    "before_context": before.trace_context,
    "after_context": after.trace_context,
    "waited_messages": sent,
    "spans": sorted(span.name for span in exporter.get_finished_spans()),
    "send_trace": next(
        format(span.context.trace_id, "032x") for span in exporter.get_finished_spans()
        if span.name.startswith("send")
    ),
}))
"""


def test_an_sdk_configured_after_the_producer_and_consumer_opened_gets_their_spans() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCENARIO], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["before_context"] is None  # API alone: nothing carried, nothing recorded
    assert found["waited_messages"] >= 1
    assert found["spans"] == ["ack late-sdk", "receive late-sdk", "send late-sdk"]
    # The message sent with the SDK carries its send span's context to the consumer.
    assert found["after_context"]["traceparent"].split("-")[1] == found["send_trace"]
