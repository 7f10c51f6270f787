"""Without OpenTelemetry (not importable, or CLOUDQUEUE_TELEMETRY=off) everything works
and ``opentelemetry`` is never imported: checked in a fresh interpreter each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Sends, receives (sync and asyncio) and runs a worker; prints what it observed.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time

    if sys.argv[1] == "blocked":
        class Blocker:
            # As if opentelemetry were not installed at all.
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, Blocker())

    import cloudqueue, cloudqueue.aio
    from cloudqueue._telemetry import active
    from cloudqueue.worker import App

    url = "memory://absent"
    with cloudqueue.open_producer(url) as producer:
        producer.send(b"one", attributes={"k": "v"})
        producer.send_batch([cloudqueue.Message(b"two"), cloudqueue.Message(b"three")])
    with cloudqueue.open_consumer(url) as consumer:
        got = []
        while len(got) < 3:
            got += consumer.receive(3, 1.0)
        for message in got:
            message.ack()

    async def asyncio_round():
        async with cloudqueue.aio.open_producer(url) as producer:
            await producer.send(b"four")
        async with cloudqueue.aio.open_consumer(url) as consumer:
            [message] = await consumer.receive(1, 5.0)
            await message.ack()
            return message.body

    handled = []
    app = App()

    @app.handler(url)
    def on_message(message):
        handled.append(message.body)

    async def serve():
        body = await asyncio_round()
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"five")
        serving = asyncio.create_task(app.serve(grace=5.0))
        while not handled:
            assert not serving.done(), serving.exception()
            await asyncio.sleep(0.01)
        app.stop()
        await serving
        return body

    asyncio_body = asyncio.run(serve())
    print(json.dumps({
        "active": active() is not None,
        "bodies": sorted(m.body.decode() for m in got) + [asyncio_body.decode()],
        "handled": [body.decode() for body in handled],
        "attributes": got[[m.body for m in got].index(b"one")].attributes,
        "imported": sorted(name for name in sys.modules if name.startswith("opentelemetry")),
    }))
    """
)


@pytest.mark.parametrize("how", ["blocked", "off"])
def test_everything_works_without_opentelemetry_and_never_imports_it(how: str) -> None:
    env = dict(os.environ)
    env.pop("CLOUDQUEUE_TELEMETRY", None)
    if how == "off":
        env["CLOUDQUEUE_TELEMETRY"] = "off"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, how], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {
        "active": False,
        "bodies": ["one", "three", "two", "four"],
        "handled": ["five"],
        "attributes": {"k": "v"},
        "imported": [],
    }


def test_the_same_script_does_import_opentelemetry_when_it_is_there() -> None:
    # The control: proves the checks above would see an import.
    env = {k: v for k, v in os.environ.items() if k != "CLOUDQUEUE_TELEMETRY"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "present"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["active"] is True
    assert "opentelemetry.trace" in seen["imported"]
