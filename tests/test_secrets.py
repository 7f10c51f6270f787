"""Secrets never show: not in URLs, reprs, errors, tracebacks, log records or CLI output.

The provider-independent half of the secrets tests (each cloud plugin has its own, against
its local server). A test provider, ``vault://``, behaves like an SDK that echoes what it
was given: its errors quote the endpoint URL and the token (one of them from a ``__str__``
computed from state, as gRPC's are), and it logs the request URL and headers at DEBUG on
``botocore.endpoint``, as botocore does.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest

import cloudqueue
from cloudqueue import _secrets
from cloudqueue._url import parse_url
from cloudqueue.driver import (
    BatchErrors,
    Capabilities,
    Declaration,
    Delivery,
    Limits,
    Provider,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.errors import ErrorCode, QueueError, register_secret, scrub, translate, translated
from cloudqueue.testing.contract import unique_name
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret

LIMITS = Limits(
    max_message_bytes=1000, max_send_batch=10, max_send_batch_bytes=5000, max_receive_batch=10,
    max_settle_batch=10, max_attributes=3, max_attribute_name_bytes=20,
    max_attribute_value_bytes=50,
)
FAST = cloudqueue.RetryPolicy(initial=0.01, maximum=0.02, deadline=0.2)
sdk_log = logging.getLogger("botocore.endpoint")


# -- a provider whose "SDK" echoes every secret it was given -----------------------


class EndpointError(Exception):
    """Like botocore's errors: the text is made from the endpoint when raised."""


class RpcError(Exception):
    """Like gRPC's errors: ``str()`` is computed from state, not from ``args``."""

    def __init__(self, target: str = "") -> None:
        super().__init__()
        self.target = target

    def __str__(self) -> str:
        return f"failed to connect to all addresses; last error: {self.target}"


TABLE = {EndpointError: ErrorCode.UNAVAILABLE, RpcError: ErrorCode.UNAVAILABLE}


def sdk_call(url: Url, what: str) -> None:
    """What an SDK does on a refused connection: log the request, then raise."""
    endpoint, token = url.param("endpoint_url") or "", url.param("token") or ""
    sdk_log.debug("Sending http request: <Request url=%s, headers=%r>", endpoint,
                  {"Authorization": f"Bearer {token}"})
    sdk_log.debug("Calling the endpoint %s for %s", url.unsafe_str(), what)
    with translate(TABLE, what):
        try:
            raise RpcError(f"ipv4:{endpoint}")
        except RpcError as rpc:
            sdk_log.debug("retrying %s", what, exc_info=True)
            raise EndpointError(
                f"Could not connect to the endpoint URL: {endpoint!r} (token {token})"
            ) from rpc


class VaultTopic(TopicDriver):
    def __init__(self, url: Url) -> None:
        self.url = url

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(limits=LIMITS)

    def send_batch(self, messages: Sequence[cloudqueue.Message]) -> list[str | QueueError]:
        sdk_call(self.url, "sending")
        raise AssertionError("unreachable")


class VaultSubscription(SubscriptionDriver):
    def __init__(self, url: Url) -> None:
        self.url = url
        self.calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(limits=LIMITS)

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        self.calls += 1
        if self.calls == 1:  # the first pull fails; the consumer logs it and tries again
            sdk_call(self.url, "receiving")
        return [Delivery(token=1, id="m-1", body=b"hello", attributes={}, delivery_attempt=1)]

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        sdk_call(self.url, "acknowledging")
        return None

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return None


class VaultProvider(Provider):
    schemes = ("vault",)
    distribution = "cloudqueue-tests"
    parameters = frozenset({"endpoint_url", "token", "timeout"})
    secret_parameters = frozenset({"token"})

    def open_topic(self, url: Url) -> TopicDriver:
        return VaultTopic(url)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        return VaultSubscription(url)

    def capabilities(self, url: Url) -> Capabilities:
        url.float_param("timeout", 1.0)
        return Capabilities(limits=LIMITS)

    def declare(self, url: Url, declaration: Declaration) -> None:
        sdk_call(url, "declaring")

    def dead_letter_url(self, url: Url) -> Url:
        return url.replace(host=url.host + "-dlq")

    def purge(self, url: Url) -> None:
        sdk_call(url, "purging")

    def delete(self, url: Url) -> None:
        pass


class VaultPlugin:
    @cloudqueue.hookimpl
    def cloudqueue_providers(self) -> list[Provider]:
        return [VaultProvider()]


@pytest.fixture
def vault() -> Iterator[None]:
    manager = cloudqueue.plugin_manager()
    plugin = VaultPlugin()
    manager.register(plugin, name="vault-tests")
    yield
    manager.unregister(plugin)


# -- URLs ----------------------------------------------------------------------------


def test_url_hides_secrets_by_position_even_unregistered_ones() -> None:
    # Too short to be registered (and so scrubbed): hidden by where they are, not what.
    url = parse_url(
        "vault://ann:pw@orders?endpoint_url=http://AKID:pw2@127.0.0.1:1&token=tk&timeout=x",
        secret_params={"token"},
    )
    shown = "vault://ann:***@orders?endpoint_url=http://AKID:***@127.0.0.1:1&token=***&timeout=x"
    assert str(url) == shown
    assert repr(url) == f"Url({shown!r})"
    assert repr(url.params) == str(url.params) == (
        "{'endpoint_url': 'http://AKID:***@127.0.0.1:1', 'token': '***', 'timeout': 'x'}"
    )
    assert url.unsafe_str() == (
        "vault://ann:pw@orders?endpoint_url=http://AKID:pw2@127.0.0.1:1&token=tk&timeout=x"
    )
    assert url.password == "pw" and url.params["token"] == "tk"  # still usable by drivers
    assert str(url.replace(host="other")).startswith("vault://ann:***@other?")


def test_every_secret_in_a_url_is_registered_when_it_is_parsed() -> None:
    user, endpoint, key = (new_secret() for _ in range(3))
    connection = f"Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey={key}+/=="
    text = (
        f"vault://ann:{user}@orders?endpoint_url=http://AKID:{endpoint}@127.0.0.1:1"
        f"&token={quote(connection, safe='')}"
    )
    parse_url(text, secret_params={"token"})
    # An SDK echoing any of them, as given or URL-encoded, is scrubbed.
    echoed = cloudqueue.Unavailable(
        f"{user} {endpoint} {key}+/== {quote(key + '+/==', safe='')} {text} {connection}"
    )
    for secret in (user, endpoint, key):
        assert secret not in str(echoed) and secret not in scrub(text)
    # Only the secret parts of a connection string are secrets.
    assert scrub(f"SharedAccessKeyName=Root;SharedAccessKey={key}+/==") == (
        "SharedAccessKeyName=Root;SharedAccessKey=***"
    )


@pytest.mark.parametrize(
    "template",
    [
        "user:{s}@host/orders",  # no scheme
        "://user:{s}@host/orders",
        "memory:/user:{s}@orders",
    ],
)
def test_urls_that_do_not_parse_are_not_echoed_with_their_secrets(template: str) -> None:
    secret = new_secret()
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        cloudqueue.open_producer(template.format(s=secret))
    exposure = Exposure(secret)
    exposure.error(info.value)
    exposure.assert_clean()


def test_parameter_values_in_errors_hide_url_passwords(tmp_path: Path) -> None:
    secret = new_secret()
    url = f"sqlite:///{tmp_path}/q.db?queue=q&busy_timeout=http://a:{secret}@h"
    with pytest.raises(cloudqueue.InvalidArgument, match="busy_timeout") as info:
        cloudqueue.open_producer(url)
    exposure = Exposure(secret)
    exposure.error(info.value)
    exposure.assert_clean()


# -- everything a provider's SDK may echo -------------------------------------------


def test_nothing_printed_logged_or_raised_shows_a_secret(
    vault: None, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    log_everything(caplog)
    user, endpoint, token = new_secret("user"), new_secret("endpoint"), new_secret("token")
    name = unique_name("vault")
    url = (f"vault://ann:{user}@{name}?endpoint_url=http://AKID:{endpoint}@127.0.0.1:9"
           f"&token={token}")
    exposure = Exposure(user, endpoint, token)
    exposure.objects(parse_url(url, secret_params={"token"}))

    with cloudqueue.open_producer(url, retry=FAST) as producer:
        exposure.objects(producer, producer.url, producer.capabilities)
        with pytest.raises(cloudqueue.Unavailable) as sent:
            producer.send(b"x")
        exposure.error(sent.value)
        with pytest.raises(cloudqueue.QueueError) as batch:
            producer.send_batch([cloudqueue.Message(b"a"), cloudqueue.Message(b"b")])
        exposure.error(batch.value)
    with cloudqueue.open_consumer(url, retry=FAST, settle_delay=0.0) as consumer:
        exposure.objects(consumer)
        messages = consumer.receive(max_messages=1, wait=5.0)
        assert messages, "the consumer never got past the failed pull"
        exposure.objects(*messages)
        messages[0].ack()
    exposure.objects(consumer)
    for call in (cloudqueue.declare, cloudqueue.purge):
        with pytest.raises(cloudqueue.Unavailable) as info:
            call(url)
        exposure.error(info.value)
        assert info.value.as_(EndpointError) is not None  # the native error is still there
    with pytest.raises(cloudqueue.InvalidArgument) as bad:
        cloudqueue.capabilities(url + f"&timeout=http://b:{endpoint}@h")
    exposure.error(bad.value)
    exposure.objects(cloudqueue.capabilities(url))

    assert any("Sending http request" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info for r in caplog.records)
    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())


def test_native_errors_keep_their_type_and_lose_their_secrets() -> None:
    secret = new_secret()
    register_secret(secret)
    try:
        try:
            raise RpcError(f"ipv4:{secret}")
        except RpcError as rpc:
            raise EndpointError(f"endpoint {secret}") from rpc
    except EndpointError as native:
        error = translated(native, TABLE, "calling")
    rpc_error = error.as_(EndpointError).__cause__  # type: ignore[union-attr]
    assert isinstance(rpc_error, RpcError) and type(rpc_error).__name__ == "RpcError"
    assert rpc_error.target == f"ipv4:{secret}"  # the state is left alone, only text is scrubbed
    text = "".join(traceback.format_exception(error))
    assert secret not in text and "RpcError: failed to connect" in text
    assert "EndpointError: endpoint ***" in text
    copy = pickle.loads(pickle.dumps(rpc_error))
    assert type(copy) is RpcError and copy.target == rpc_error.target


def test_an_error_given_a_native_cause_scrubs_it() -> None:
    # What the engine does with a driver's stray exception: error.__cause__ = native.
    secret = new_secret()
    register_secret(secret)
    error = cloudqueue.Unknown("driver send_batch raised RpcError")
    error.__cause__ = RpcError(f"ipv4:{secret}")
    assert secret not in "".join(traceback.format_exception(error))


def test_log_records_are_scrubbed_whatever_handler_formats_them() -> None:
    secret = new_secret()
    register_secret(secret)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("urllib3.connectionpool")
    logger.addHandler(handler)  # a handler no filter was installed on
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("Starting new HTTP connection: %s", f"http://a:{secret}@h")
        logger.debug({"Authorization": secret})
        try:
            raise RpcError(secret)
        except RpcError:
            logger.warning("failed", exc_info=True, stack_info=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    formatter = logging.Formatter()
    for record in records:
        assert secret not in formatter.format(record)
        assert secret not in repr(record.args)


def test_log_scrubbing_is_skipped_for_disabled_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    register_secret(new_secret())
    calls: list[logging.LogRecord] = []
    monkeypatch.setattr(_secrets, "scrub_record", calls.append)
    logger = logging.getLogger("botocore.hooks")
    logger.setLevel(logging.WARNING)
    try:
        logger.debug("Event %s", "before-call")
        assert calls == []
        logger.warning("Event %s", "before-call")
        assert len(calls) == 1
    finally:
        logger.setLevel(logging.NOTSET)


def test_no_secret_no_log_record_factory() -> None:
    program = (
        "import logging, cloudqueue\n"
        "with cloudqueue.open_producer('memory://orders') as p: p.send(b'x')\n"
        "assert logging.getLogRecordFactory() is logging.LogRecord\n"
        "cloudqueue.open_producer('memory://ann:p4ssw0rd@orders').close()\n"
        "assert logging.getLogRecordFactory() is not logging.LogRecord\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


# -- the command line ------------------------------------------------------------------


def test_cli_failing_paths_print_no_secret(tmp_path: Path) -> None:
    secret = new_secret()
    exposure = Exposure(secret)
    name = unique_name("cli")
    sqlite = f"sqlite:///{tmp_path}/q.db?queue=q&busy_timeout=http://a:{secret}@h"
    memory = f"memory://ann:{secret}@{name}"
    runs = [
        ("send", "--url", f"user:{secret}@host/orders", "x"),
        ("send", "--url", sqlite, "x"),
        ("send", "--url", f"{memory}?colour=http://a:{secret}@h", "x"),
        ("declare", "--dead-letter-after", "3", memory),
        ("declare", sqlite),
        ("providers", "--url", memory),
        ("providers", "--json", "--url", memory),
        ("providers", "--url", sqlite),
        ("receive", "--url", sqlite),
        ("purge", sqlite),
    ]
    for args in runs:
        result = exposure.cli(*args, cwd=tmp_path)
        assert result.returncode in (0, 1), result.stderr
    exposure.assert_clean()
