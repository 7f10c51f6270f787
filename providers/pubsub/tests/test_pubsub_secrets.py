"""No secret given to the Pub/Sub provider shows anywhere, against the local gRPC server.

Pub/Sub takes no key in its URL: secrets can still be planted in the user-info of the
``pubsub://`` URL and of ``PUBSUB_EMULATOR_HOST`` (``user:password@host:port``, which gRPC
quotes in its errors). Errors are provoked (a topic and a subscription that do not exist,
a port where nothing listens, a target gRPC cannot resolve) with every logger at DEBUG,
every object is repr'd, and the CLI's failing paths run through the real ``cloudqueue``
command; the secrets must show nowhere.
"""

from __future__ import annotations

import socket

import cloudqueue
import pytest
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret

from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "secrets-project"
FAST = cloudqueue.RetryPolicy(initial=0.01, maximum=0.05, deadline=0.5)


def free_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_pubsub_secrets_never_show(
    server: PubSubServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    log_everything(caplog)
    user, emulator_password = new_secret(), new_secret()
    exposure = Exposure(user, emulator_password)
    topic = f"topic-{new_secret('t')[-12:]}"
    url = f"pubsub://ann:{user}@{PROJECT}/{topic}?subscription={topic}-sub"

    # Working calls: nothing in use may show in reprs or DEBUG logs.
    cloudqueue.declare(url)
    with cloudqueue.open_producer(url) as producer:
        exposure.objects(producer, producer.url, producer.capabilities)
        producer.send(b"hello")
    with cloudqueue.open_consumer(url) as consumer:
        received = consumer.receive(max_messages=1, wait=10.0)
        assert received
        exposure.objects(consumer, *received, cloudqueue.capabilities(url))
        received[0].ack()

    missing = f"pubsub://ann:{user}@{PROJECT}/missing-{topic}?subscription=missing-{topic}"
    hosts = {
        "the local server": server.address,
        "a user:password@ target gRPC cannot resolve": f"ann:{emulator_password}@{server.address}",
        "nothing listening": f"ann:{emulator_password}@127.0.0.1:{free_port()}",
    }
    for host in hosts.values():
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
        for target in (missing, url):
            if host == server.address and target == url:
                continue  # that one works
            exposure.failed_round_trip(target, FAST)
            for call in (cloudqueue.capabilities, cloudqueue.purge, cloudqueue.delete):
                with pytest.raises(cloudqueue.QueueError) as info:
                    call(target)
                exposure.error(info.value)
        # The command line, through its real entry point, with the same environment
        # (send and receive only where they fail at once: the CLI retries outages for 60 s).
        env = {"PUBSUB_EMULATOR_HOST": host}
        if host == server.address:
            exposure.cli("send", "--url", missing, "x", env=env)
            exposure.cli("receive", "--url", missing, "--wait", "0", env=env)
        exposure.cli("declare", "--dead-letter-after", "5", missing, env=env)
        exposure.cli("providers", "--url", missing, env=env)
        exposure.cli("purge", missing, env=env)

    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())
