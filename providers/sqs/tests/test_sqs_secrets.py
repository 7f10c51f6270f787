"""No secret given to the SQS provider shows anywhere, against LocalStack.

Secrets are planted in every place a user can put one: the user-info of the ``sqs://`` URL
and of its ``endpoint_url`` parameter, ``AWS_ENDPOINT_URL_SQS``, and the credentials boto3
reads (``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``). Errors are provoked (a queue that
does not exist, a port where nothing listens) with every logger at DEBUG (botocore logs
request URLs and headers there), every object is repr'd, and the CLI's failing paths run
through the real ``cloudqueue`` command; the secrets must show nowhere.
"""

from __future__ import annotations

from urllib.parse import urlencode

import cloudqueue
import pytest
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret

from cloudqueue_sqs.testing import LocalStack, free_loopback_port

FAST = cloudqueue.RetryPolicy(initial=0.01, maximum=0.05, deadline=0.5)


def with_password(endpoint: str, password: str) -> str:
    return endpoint.replace("://", f"://AKIDSECRETSTEST:{password}@", 1)


def sqs_url(name: str, endpoint: str | None = None, user: str | None = None) -> str:
    params = {"region": "us-east-1"}
    if endpoint:
        params["endpoint_url"] = endpoint
    userinfo = f"ann:{user}@" if user else ""
    return f"sqs://{userinfo}{name}?{urlencode(params, safe=':/@')}"


def test_sqs_secrets_never_show(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    log_everything(caplog)
    user, endpoint_password, env_endpoint_password, secret_key, token = (
        new_secret() for _ in range(5)
    )
    exposure = Exposure(user, endpoint_password, env_endpoint_password, secret_key, token)
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIDSECRETSTEST",
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_SESSION_TOKEN": token,
        "AWS_ENDPOINT_URL_SQS": with_password(localstack.endpoint_url, env_endpoint_password),
    }
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    live = with_password(localstack.endpoint_url, endpoint_password)
    dead = with_password(f"http://127.0.0.1:{free_loopback_port()}", endpoint_password)
    queue = unique_name("cq-secret")

    # Working calls: the secrets in use must not show in reprs or botocore's DEBUG logs.
    working = sqs_url(queue, live, user)
    cloudqueue.declare(working, dead_letter_after=3)
    with cloudqueue.open_producer(working) as producer:
        exposure.objects(producer, producer.url, producer.capabilities)
        producer.send(b"hello")
    with cloudqueue.open_consumer(working) as consumer:
        received = consumer.receive(max_messages=1, wait=10.0)
        assert received
        exposure.objects(consumer, *received, cloudqueue.capabilities(working))
        received[0].ack()
    exposure.text("dead_letter_url", str(cloudqueue.dead_letter_url(working) and "checked"))
    exposure.objects(cloudqueue.capabilities(sqs_url(queue)))  # AWS_ENDPOINT_URL_SQS

    failing = [
        sqs_url(unique_name("cq-missing"), live, user),  # no such queue
        sqs_url(unique_name("cq-missing")),  # no such queue, at AWS_ENDPOINT_URL_SQS
        sqs_url(queue, dead, user),  # nothing listens there
    ]
    for url in failing:
        exposure.failed_round_trip(url, FAST)
        exposure.objects(cloudqueue.capabilities(url))  # known without a call
        for call in (cloudqueue.purge, cloudqueue.delete):
            with pytest.raises(cloudqueue.QueueError) as info:
                call(url)
            exposure.error(info.value)
    with pytest.raises(cloudqueue.QueueError) as declared:
        cloudqueue.declare(failing[2])
    exposure.error(declared.value)

    # The command line, through its real entry point (send and receive only where they
    # fail at once: the CLI retries outages for 60 s).
    exposure.cli("send", "--url", failing[0], "x")
    exposure.cli("send", "--url", failing[1], "x")
    exposure.cli("receive", "--url", failing[0], "--wait", "0")
    exposure.cli("declare", "--dead-letter-after", "3", failing[2])
    exposure.cli("providers", "--url", failing[2])
    exposure.cli("providers", "--json", "--url", working)
    exposure.cli("purge", failing[0])
    exposure.cli("purge", failing[2])

    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())
