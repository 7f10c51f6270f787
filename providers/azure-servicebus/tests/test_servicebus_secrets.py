"""No secret given to the Service Bus provider shows anywhere, against the local broker.

Secrets are planted in every place a user can put one: the SharedAccessKey of the
``connection_string`` parameter, that of ``AZURE_SERVICEBUS_CONNECTION_STRING``, the
user-info of the ``azuresb://`` URL and of the connection string's ``Endpoint``. Then
errors are provoked (a queue that does not exist, a port where nothing listens, a
malformed endpoint) with every logger at DEBUG, every object is repr'd, and the CLI's
failing paths run through the real ``cloudqueue`` command; the secrets must show nowhere.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import quote

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret

from cloudqueue_azure_servicebus._names import CA_FILE_ENV, CONNECTION_STRING_ENV
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

FAST = cloudqueue.RetryPolicy(initial=0.01, maximum=0.05, deadline=0.5)


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker() as running:
        yield running


def free_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connection_string(endpoint: str, key: str) -> str:
    return (f"Endpoint=sb://{endpoint};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={key};UseDevelopmentEmulator=true")


def url_for(name: str, connection: str | None = None, user: str | None = None) -> str:
    userinfo = f"ann:{user}@" if user else ""
    query = f"?connection_string={quote(connection, safe='')}" if connection else ""
    return f"azuresb://{userinfo}local/{name}{query}"


def test_servicebus_secrets_never_show(
    broker: ServiceBusBroker, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    log_everything(caplog)
    key, env_key, user, endpoint_password = (new_secret() for _ in range(4))
    exposure = Exposure(key, env_key, user, endpoint_password)
    monkeypatch.setenv(CA_FILE_ENV, broker.certificate_path)
    monkeypatch.setenv(CONNECTION_STRING_ENV, connection_string(f"127.0.0.1:{broker.port}", env_key))
    dead = f"127.0.0.1:{free_port()}"
    live = connection_string(f"127.0.0.1:{broker.port}", key)
    queue = unique_name("secret")
    broker.create_queue(queue)

    # Working calls: the secrets in use must not show in reprs or DEBUG logs.
    working = url_for(queue, live, user)
    with cloudqueue.open_producer(working) as producer:
        exposure.objects(producer, producer.url, producer.capabilities)
        producer.send(b"hello")
    with cloudqueue.open_consumer(working) as consumer:
        received = consumer.receive(max_messages=1, wait=10.0)
        assert received
        exposure.objects(consumer, *received)
        received[0].ack()
    exposure.objects(cloudqueue.capabilities(url_for(queue)))  # the environment's key

    failing = [
        url_for(unique_name("missing"), live, user),  # no such queue
        url_for(unique_name("missing")),  # no such queue, the environment's key
        url_for(queue, connection_string(dead, key)),  # nothing listens there
        url_for(unique_name("missing"),
                connection_string(f"ann:{endpoint_password}@127.0.0.1:{broker.port}", key)),
    ]
    for url in failing:
        exposure.failed_round_trip(url, FAST)
        for call in (cloudqueue.capabilities, cloudqueue.declare, cloudqueue.purge):
            try:
                exposure.objects(call(url))
            except cloudqueue.QueueError as error:
                exposure.error(error)

    # The command line, through its real entry point.
    cli_env = {CA_FILE_ENV: broker.certificate_path}
    exposure.cli("send", "--url", failing[0], "x", env=cli_env)
    exposure.cli("send", "--url", failing[1], "x", env=cli_env)
    exposure.cli("declare", failing[2], env=cli_env)
    exposure.cli("declare", "--dead-letter-after", "3", failing[3], env=cli_env)
    exposure.cli("providers", "--url", failing[2], env=cli_env)
    exposure.cli("providers", "--json", "--url", working, env=cli_env)
    exposure.cli("receive", "--url", failing[0], "--wait", "0", env=cli_env)
    exposure.cli("purge", failing[0], env=cli_env)

    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())
