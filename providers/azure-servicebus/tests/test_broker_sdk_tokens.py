"""The broker's token checks (``require_valid_tokens=True``), through the official SDK: what
it refuses on AMQP ``$cbs`` and on the administration surface, and that a broker started
without the option still accepts anything."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from urllib.parse import quote_plus

import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusAuthenticationError
from azure.servicebus.management import ServiceBusAdministrationClient
from cloudqueue.testing.contract import unique_name

from cloudqueue_azure_servicebus.testing import ServiceBusBroker


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker(require_valid_tokens=True) as running:
        yield running


def signature(broker: ServiceBusBroker, *, key: str, expiry: int) -> str:
    resource = f"sb://{broker.fully_qualified_namespace}"
    digest = hmac.new(key.encode(), f"{quote_plus(resource)}\n{expiry}".encode(), hashlib.sha256).digest()
    return (f"SharedAccessSignature sr={quote_plus(resource)}&sig={quote_plus(base64.b64encode(digest))}"
            f"&se={expiry}&skn={broker.shared_access_key_name}")


def send_one(broker: ServiceBusBroker, credential: object, queue: str) -> None:
    namespace = broker.fully_qualified_namespace
    with (
        ServiceBusClient(namespace, credential, use_tls=False, retry_total=0) as client,
        client.get_queue_sender(queue) as sender,
    ):
        sender.send_messages(ServiceBusMessage("x"))


def admin_for(broker: ServiceBusBroker, credential: object) -> ServiceBusAdministrationClient:
    return ServiceBusAdministrationClient(
        broker.fully_qualified_namespace, credential, connection_verify=broker.certificate_path, retry_total=0
    )


@pytest.mark.parametrize(
    "refused",
    ["wrong key", "expired", "other broker's token"],
)
def test_amqp_refuses_tokens_it_cannot_verify(broker: ServiceBusBroker, refused: str) -> None:
    queue = unique_name("tok")
    broker.create_queue(queue)
    credential: object
    if refused == "wrong key":
        credential = AzureNamedKeyCredential(broker.shared_access_key_name, "not-the-key")
    elif refused == "expired":
        past = int(time.time()) - 5
        credential = AzureSasCredential(signature(broker, key=broker.shared_access_key, expiry=past))
    else:
        with ServiceBusBroker() as other:
            credential = other.token_credential()
    with pytest.raises(ServiceBusAuthenticationError):
        send_one(broker, credential, queue)
    assert broker.message_counts(queue)["total"] == 0


def test_amqp_accepts_each_valid_kind(broker: ServiceBusBroker) -> None:
    queue = unique_name("tok")
    broker.create_queue(queue)
    valid = [
        AzureNamedKeyCredential(broker.shared_access_key_name, broker.shared_access_key),
        AzureSasCredential(signature(broker, key=broker.shared_access_key, expiry=int(time.time()) + 600)),
        broker.token_credential(),
    ]
    for credential in valid:
        send_one(broker, credential, queue)
    assert broker.message_counts(queue)["active"] == 3


def test_administration_refuses_a_token_from_elsewhere_and_names_why(broker: ServiceBusBroker) -> None:
    with ServiceBusBroker() as other:
        stranger = other.token_credential()
    with admin_for(broker, stranger) as admin, pytest.raises(ClientAuthenticationError) as refused:
        admin.create_queue(unique_name("tok"))
    assert "not issued by this broker" in str(refused.value)
    bad_key = broker.connection_string.replace(broker.shared_access_key, "not-the-key")
    with (
        ServiceBusAdministrationClient.from_connection_string(
            bad_key, connection_verify=broker.certificate_path, retry_total=0) as admin,
        pytest.raises(ClientAuthenticationError, match="does not match the key"),
    ):
        admin.get_namespace_properties()


def test_administration_accepts_the_brokers_own_credential(broker: ServiceBusBroker) -> None:
    credential = broker.token_credential()
    name = unique_name("tok")
    with admin_for(broker, credential) as admin:
        admin.create_queue(name)
        assert admin.get_queue(name).name == name
    assert credential.token_requests >= 1


def test_without_the_option_any_token_is_accepted() -> None:
    with ServiceBusBroker() as lenient:
        queue = unique_name("tok")
        lenient.create_queue(queue)
        send_one(lenient, AzureNamedKeyCredential(lenient.shared_access_key_name, "any key at all"), queue)
        assert lenient.message_counts(queue)["active"] == 1
