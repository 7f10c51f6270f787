"""``sdk=ServiceBusSdk(...)``: the user's own credential, ServiceBusClient and administration
client, against a broker that checks every token (``require_valid_tokens=True``).

The broker refuses any token not signed with its key or issued by its own token
credential, and URLs here carry no connection string: a call that works used the
user's objects. Counting credentials and an azure-core transport show which object
did the work and that the user's objects are never closed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import cloudqueue
import cloudqueue.aio
import cloudqueue.ops
import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient
from azure.servicebus.management import ServiceBusAdministrationClient
from cloudqueue._url import parse_url
from cloudqueue.driver import Declaration
from cloudqueue.errors import InvalidArgument, PermissionDenied
from cloudqueue.testing.contract import collect, unique_name
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret

from cloudqueue_azure_servicebus import ServiceBusSdk
from cloudqueue_azure_servicebus.provider import ServiceBusProvider
from cloudqueue_azure_servicebus.testing import ServiceBusBroker
from cloudqueue_azure_servicebus.testing._errors import BrokerError

WRONG_KEY = new_secret()


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker(require_valid_tokens=True) as running:
        yield running


@pytest.fixture(autouse=True)
def no_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the sdk= objects may authenticate here.
    monkeypatch.delenv("AZURE_SERVICEBUS_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_SERVICEBUS_ADMIN_CA_FILE", raising=False)


def url_for(broker: ServiceBusBroker, name: str) -> str:
    """A URL naming the broker's namespace and trusting its admin certificate: no credentials."""
    ca_file = quote(broker.certificate_path, safe="")
    return f"azuresb://{broker.fully_qualified_namespace}/{name}?admin_ca_file={ca_file}"


def sas_signature(broker: ServiceBusBroker, lifetime: int = 600) -> str:
    """A shared access signature for the namespace, made as the Azure docs describe."""
    resource = f"sb://{broker.fully_qualified_namespace}"
    expiry = int(time.time()) + lifetime
    digest = hmac.new(
        broker.shared_access_key.encode(), f"{quote_plus(resource)}\n{expiry}".encode(), hashlib.sha256
    ).digest()
    signature = quote_plus(base64.b64encode(digest).decode())
    return (f"SharedAccessSignature sr={quote_plus(resource)}&sig={signature}&se={expiry}"
            f"&skn={broker.shared_access_key_name}")


class CountingTransport(RequestsTransport):  # type: ignore[misc]
    """azure-core's own transport, counting requests and closes (the SDK's transport= hook)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests = 0
        self.closes = 0

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().send(request, **kwargs)

    def close(self) -> None:
        self.closes += 1
        super().close()

    def __exit__(self, *exc_info: Any) -> None:
        self.closes += 1
        super().__exit__(*exc_info)


def round_trip(url: str, sdk: ServiceBusSdk, body: str) -> None:
    cloudqueue.declare(url, sdk=sdk)
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(body)
    with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
        (got,) = collect(consumer, 1, timeout=30)
    assert got.body == body.encode()


# -- a credential authenticates -------------------------------------------------------------


def test_token_credential_authenticates_every_operation(broker: ServiceBusBroker) -> None:
    credential = broker.token_credential()
    sdk = ServiceBusSdk(credential=credential)
    name = unique_name("sdk-token")
    url = url_for(broker, name)
    round_trip(url, sdk, "by token")
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send("waiting")
    assert cloudqueue.capabilities(url, sdk=sdk).limits.max_message_bytes > 0
    assert cloudqueue.ops.stats(url, sdk=sdk).available == 1
    assert [m.body for m in cloudqueue.ops.peek(url, sdk=sdk)] == [b"waiting"]
    cloudqueue.purge(url, sdk=sdk)
    assert cloudqueue.ops.stats(url, sdk=sdk).available == 0
    cloudqueue.delete(url, sdk=sdk)
    with pytest.raises(BrokerError, match="could not be found"):
        broker.message_counts(name)
    # Both AMQP ($cbs) and HTTPS asked this credential, always for Service Bus's scope.
    assert credential.token_requests >= 2
    assert set(credential.scopes) == {"https://servicebus.azure.net//.default"}
    assert credential.close_calls == 0


def test_named_key_credential_authenticates_amqp_and_administration(broker: ServiceBusBroker) -> None:
    key = AzureNamedKeyCredential(broker.shared_access_key_name, broker.shared_access_key)
    sdk = ServiceBusSdk(credential=key)
    round_trip(url_for(broker, unique_name("sdk-key")), sdk, "by key")


def test_sas_credential_authenticates_amqp_and_administration(broker: ServiceBusBroker) -> None:
    sdk = ServiceBusSdk(credential=AzureSasCredential(sas_signature(broker)))
    round_trip(url_for(broker, unique_name("sdk-sas")), sdk, "by signature")


def test_a_wrong_key_is_refused_and_no_key_or_signature_shows(
    broker: ServiceBusBroker, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    log_everything(caplog)
    wrong_key = new_secret()
    signature = sas_signature(broker)
    signature_part = signature.split("sig=")[1].split("&")[0]
    exposure = Exposure(wrong_key, broker.shared_access_key, signature, signature_part)
    name = unique_name("sdk-wrong")
    broker.create_queue(name)
    url = url_for(broker, name)
    wrong = ServiceBusSdk(credential=AzureNamedKeyCredential(broker.shared_access_key_name, wrong_key))
    with pytest.raises(PermissionDenied) as admin_refused:
        cloudqueue.declare(url, sdk=wrong)
    exposure.error(admin_refused.value)
    # A valid admin client, so that only AMQP's $cbs put-token can refuse the key.
    with broker.administration_client() as admin:
        amqp_only = ServiceBusSdk(credential=wrong.credential, admin_client=admin)
        with (
            cloudqueue.open_producer(url, sdk=amqp_only) as producer,
            pytest.raises(PermissionDenied) as amqp_refused,
        ):
            producer.send("never sent")
    exposure.error(amqp_refused.value)
    assert broker.message_counts(name)["total"] == 0
    # Working calls with the right key and with a signature log and show neither.
    right = ServiceBusSdk(credential=AzureNamedKeyCredential(broker.shared_access_key_name,
                                                             broker.shared_access_key))
    signed = ServiceBusSdk(credential=AzureSasCredential(signature))
    for sdk in (right, signed):
        with cloudqueue.open_producer(url, sdk=sdk) as producer:
            producer.send("sent")
            exposure.objects(producer, sdk, cloudqueue.capabilities(url, sdk=sdk))
    exposure.objects(wrong, parse_url(url).replace(sdk=wrong))
    exposure.assert_clean(caplog=caplog, captured=capfd.readouterr())


# -- the user's own clients are the ones used, and stay open -------------------------------


def test_users_clients_are_used_and_not_closed(broker: ServiceBusBroker) -> None:
    name = unique_name("sdk-clients")
    credential = broker.token_credential()
    transport = CountingTransport(connection_verify=broker.certificate_path)
    admin = ServiceBusAdministrationClient(broker.fully_qualified_namespace, credential, transport=transport)
    client = ServiceBusClient(broker.fully_qualified_namespace, credential, use_tls=False)
    # No credential in the sdk: only these clients can authenticate against this broker.
    sdk = ServiceBusSdk(client=client, admin_client=admin)
    url = url_for(broker, name)
    own_sender = client.get_queue_sender(name)
    try:
        cloudqueue.declare(url, sdk=sdk)
        assert transport.requests >= 1  # declare went through the user's admin client
        with cloudqueue.open_producer(url, sdk=sdk) as producer:
            producer.send("through your client")
        assert cloudqueue.ops.stats(url, sdk=sdk).available == 1
        # client.close() would have closed every handler made from it, this one too.
        own_sender.send_messages(ServiceBusMessage("still yours"))
        assert broker.message_counts(name)["active"] == 2
        assert transport.closes == 0
        assert admin.get_queue(name).name == name
    finally:
        own_sender.close()
        client.close()
        admin.close()


def test_clients_built_from_a_credential_close_when_their_last_user_does() -> None:
    # A broker and a provider of their own, so that no other test's connection is counted.
    with ServiceBusBroker(require_valid_tokens=True) as broker:
        provider = ServiceBusProvider()
        credential = broker.token_credential()
        name = unique_name("sdk-ours")
        url = parse_url(url_for(broker, name)).replace(sdk=ServiceBusSdk(credential=credential))
        provider.declare(url, Declaration())
        consumer = provider.open_subscription(url)
        # While the consumer is open its clients stay: this peek and these stats reuse them.
        assert provider.peek(url, 1) == []
        assert provider.stats(url).available == 0
        assert broker.open_connections >= 2  # AMQP (the peek receiver) and HTTPS
        consumer.close()
        wait_until(lambda: broker.open_connections == 0)
        # One call on its own builds clients and closes them before it returns.
        assert provider.stats(url).available == 0
        wait_until(lambda: broker.open_connections == 0)
        provider.close()
        assert credential.close_calls == 0


def wait_until(condition: Any, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# -- asyncio: the same sync objects serve cloudqueue.aio ------------------------------------


def test_aio_uses_the_same_sync_objects(broker: ServiceBusBroker) -> None:
    import asyncio

    credential = broker.token_credential()
    sdk = ServiceBusSdk(credential=credential)
    url = url_for(broker, unique_name("sdk-aio"))

    cloudqueue.declare(url, sdk=sdk)

    async def main() -> bytes:
        async with cloudqueue.aio.open_producer(url, sdk=sdk) as producer:
            await producer.send("async")
        async with cloudqueue.aio.open_consumer(url, sdk=sdk) as consumer:
            for _ in range(30):
                for message in await consumer.receive(max_messages=1, wait=1.0):
                    await message.ack()
                    return message.body
        raise AssertionError("nothing received")

    assert asyncio.run(main()) == b"async"
    assert credential.token_requests >= 2


# -- wrong types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"credential": "Endpoint=sb://x;SharedAccessKey=abc"}, "TokenCredential"),
        ({"client": object()}, "azure.servicebus.ServiceBusClient"),
        ({"admin_client": object()}, "ServiceBusAdministrationClient"),
        ({}, "at least one of credential=, client= or admin_client="),
    ],
)
def test_wrong_types_name_the_expected_ones(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidArgument, match=expected) as refused:
        ServiceBusSdk(**fields)
    assert "abc" not in str(refused.value)


def test_async_client_is_refused_naming_the_sync_one() -> None:
    client = AsyncServiceBusClient("localhost", AzureSasCredential("sig"))
    expected = r"azure.servicebus.ServiceBusClient \(the synchronous client\)"
    with pytest.raises(InvalidArgument, match=expected):
        ServiceBusSdk(client=client)


def test_the_core_refuses_another_providers_bundle(broker: ServiceBusBroker) -> None:
    class OtherSdk(cloudqueue.SdkObjects):
        pass

    with pytest.raises(InvalidArgument, match="ServiceBusSdk"):
        cloudqueue.open_producer(url_for(broker, "q"), sdk=OtherSdk())


def test_repr_shows_types_never_secrets(broker: ServiceBusBroker) -> None:
    sdk = ServiceBusSdk(credential=AzureNamedKeyCredential("name", WRONG_KEY))
    assert repr(sdk) == "ServiceBusSdk(credential=<AzureNamedKeyCredential>)"
    url = parse_url(url_for(broker, "q")).replace(sdk=sdk)
    assert WRONG_KEY not in repr(url) and WRONG_KEY not in str(url)
