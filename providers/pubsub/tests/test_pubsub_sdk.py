"""sdk=PubSubSdk(...): the user's own credentials, client options and clients (issue 21).

Everything runs through the official client against the local server, with
``PUBSUB_EMULATOR_HOST`` unset: the clients cloudqueue makes reach the server only through the
user's ``client_options``, and the server started with ``bearer_token=`` accepts only calls
carrying the user's credential's token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import cloudqueue
import cloudqueue.aio
import google.auth.credentials
import grpc
import pytest
from cloudqueue import ops
from cloudqueue._url import parse_url
from cloudqueue.driver import SdkObjects
from cloudqueue.errors import InvalidArgument, PermissionDenied
from cloudqueue.testing.contract import unique_name
from google.api_core.client_options import ClientOptions
from google.cloud import pubsub_v1
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from cloudqueue_pubsub import PubSubSdk
from cloudqueue_pubsub.provider import PubSubProvider
from cloudqueue_pubsub.testing import PubSubServer

PROJECT = "sdk-project"
#: Unlike any other text in the tests, so that finding it anywhere means it leaked.
TOKEN = "ya29.sdk-test-Zq8wXv3"


class CountingCredentials(google.auth.credentials.Credentials):
    """A credential whose refresh hands out a fixed token, counting refreshes: the client
    library asks it for a token before its first call."""

    def __init__(self, token: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._issued = token
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = self._issued


class OtherSdk(SdkObjects):
    """Some other provider's bundle."""


@pytest.fixture(autouse=True)
def no_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    # The emulator variable would take precedence over the user's objects (as it does in the
    # official client): every test here runs without it.
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=0.3, bearer_token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def open_server() -> Iterator[PubSubServer]:
    with PubSubServer(pull_wait_seconds=0.3) as running:
        yield running


def url_of(topic: str, subscription: bool = True) -> str:
    url = f"pubsub://{PROJECT}/{topic}"
    return f"{url}?subscription={topic}-sub" if subscription else url


def credential_sdk(server: PubSubServer, token: str = TOKEN) -> PubSubSdk:
    return PubSubSdk(
        credentials=CountingCredentials(token),
        client_options={"api_endpoint": server.address},
    )


def round_trip(url: str, sdk: PubSubSdk) -> list[bytes]:
    """Provision, send, peek, receive and settle, and the operations API, all with ``sdk``."""
    cloudqueue.declare(url, sdk=sdk)
    assert cloudqueue.capabilities(url, sdk=sdk).fan_out
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(b"first")
        producer.send(b"second")
    assert ops.stats(url, sdk=sdk).exact is False  # Pub/Sub has no counts; the call works
    assert sorted(peeked.body for peeked in ops.peek(url, 10, sdk=sdk)) == [b"first", b"second"]
    received: list[bytes] = []
    with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
        while len(received) < 2:
            for message in consumer.receive(max_messages=10, wait=2.0):
                received.append(message.body)
                message.ack()
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(b"purged")
    cloudqueue.purge(url, sdk=sdk)
    cloudqueue.delete(url, sdk=sdk)
    cloudqueue.delete(url.split("?")[0], sdk=sdk)
    return sorted(received)


# -- a user's credential authenticates -----------------------------------------------------


def test_a_users_credential_authenticates_every_call(auth_server: PubSubServer) -> None:
    sdk = credential_sdk(auth_server)
    auth_server.reset_counts()

    assert round_trip(url_of(unique_name("t")), sdk) == [b"first", b"second"]

    assert isinstance(sdk.credentials, CountingCredentials)
    assert sdk.credentials.refreshes >= 1  # the library asked the user's object for its token
    counts = auth_server.request_counts()
    for method in ("CreateTopic", "CreateSubscription", "GetSubscription", "Publish", "Pull",
                   "Acknowledge", "ModifyAckDeadline", "DeleteSubscription", "DeleteTopic"):
        assert counts.get(method, 0) >= 1, method


def test_a_client_options_object_works_like_the_dict(auth_server: PubSubServer) -> None:
    sdk = PubSubSdk(
        credentials=CountingCredentials(TOKEN),
        client_options=ClientOptions(api_endpoint=auth_server.address),
    )
    url = url_of(unique_name("t"), subscription=False)
    cloudqueue.declare(url, sdk=sdk)
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        assert producer.send(b"x")
    cloudqueue.delete(url, sdk=sdk)


def test_without_the_credential_the_server_refuses(
    auth_server: PubSubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What makes the calls above pass is the user's token: the library's own emulator-mode
    # clients carry none and are refused.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", auth_server.address)
    with pytest.raises(PermissionDenied, match="bearer token"):
        cloudqueue.declare(url_of(unique_name("t")))


def test_a_wrong_token_is_refused_and_never_shown(
    auth_server: PubSubServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "ya29.wrong-Kk4pT0"
    sdk = credential_sdk(auth_server, token=wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermissionDenied) as caught:
        cloudqueue.declare(url_of(unique_name("t")), sdk=sdk)
    shown = [str(caught.value), repr(caught.value), repr(sdk), caplog.text]
    cause: BaseException | None = caught.value.__cause__
    while cause is not None:
        shown.append(str(cause))
        cause = cause.__cause__
    for text in shown:
        assert wrong not in text
        assert TOKEN not in text


def test_the_repr_names_the_fields_set_never_their_values(auth_server: PubSubServer) -> None:
    sdk = credential_sdk(auth_server)
    assert repr(sdk) == "PubSubSdk(credentials=<CountingCredentials>, client_options=<dict>)"


def test_the_emulator_variable_takes_precedence_over_credentials(
    auth_server: PubSubServer, open_server: PubSubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the official client: with PUBSUB_EMULATOR_HOST set, the clients cloudqueue makes
    # go there, without credentials, whatever the client options say.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", open_server.address)
    sdk = credential_sdk(auth_server)
    url = url_of(unique_name("t"), subscription=False)
    open_server.reset_counts()
    cloudqueue.declare(url, sdk=sdk)
    assert open_server.request_counts().get("CreateTopic") == 1
    assert isinstance(sdk.credentials, CountingCredentials)
    assert sdk.credentials.refreshes == 0


def test_the_asyncio_api_takes_the_same_objects(auth_server: PubSubServer) -> None:
    sdk = credential_sdk(auth_server)
    url = url_of(unique_name("t"))
    cloudqueue.declare(url, sdk=sdk)

    async def send_and_receive() -> list[bytes]:
        async with cloudqueue.aio.open_producer(url, sdk=sdk) as producer:
            await producer.send(b"async")
        async with cloudqueue.aio.open_consumer(url, sdk=sdk) as consumer:
            while True:
                messages = await consumer.receive(max_messages=1, wait=2.0)
                if messages:
                    await messages[0].ack()
                    return [message.body for message in messages]

    assert asyncio.run(send_and_receive()) == [b"async"]
    cloudqueue.delete(url.split("?")[0], sdk=sdk)


def test_telemetry_names_the_users_endpoint(auth_server: PubSubServer) -> None:
    provider = PubSubProvider()
    try:
        url = parse_url(url_of(unique_name("t"))).replace(sdk=credential_sdk(auth_server))
        driver = provider.open_subscription(url)
        attributes = driver.telemetry_attributes()
        driver.close()
    finally:
        provider.close()
    assert (attributes["server.address"], attributes["server.port"]) == (
        "127.0.0.1", auth_server.port
    )


# -- the user's clients are the ones used, and stay open ------------------------------------


def _users_clients(kind: str, server: PubSubServer) -> tuple[PublisherClient, SubscriberClient]:
    """Clients as a user makes them for a local endpoint, of the wrapper classes most code
    holds (``google.cloud.pubsub_v1``) or of the generated ones (``google.pubsub_v1``)."""
    publisher_class = pubsub_v1.PublisherClient if kind == "wrapper" else PublisherClient
    subscriber_class = pubsub_v1.SubscriberClient if kind == "wrapper" else SubscriberClient
    publisher = publisher_class(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(server.address))
    )
    subscriber = subscriber_class(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(server.address))
    )
    return publisher, subscriber


def close_clients(*clients: PublisherClient | SubscriberClient) -> None:
    for client in clients:
        client.transport.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("kind", ["wrapper", "generated"])
def test_the_users_clients_are_the_ones_used_and_never_closed(
    kind: str, open_server: PubSubServer
) -> None:
    publisher, subscriber = _users_clients(kind, open_server)
    sdk = PubSubSdk(publisher=publisher, subscriber=subscriber)
    topic = unique_name("t")
    url = url_of(topic)
    try:
        # Nothing else could reach the server: without the emulator variable or client
        # options, a client cloudqueue made would go to Google's endpoint.
        assert round_trip(url, sdk) == [b"first", b"second"]
        cloudqueue.declare(url, sdk=sdk)
        with cloudqueue.open_producer(url, sdk=sdk) as producer:
            used_publisher = producer.as_(PublisherClient)
            assert used_publisher is publisher
        with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
            used_subscriber = consumer.as_(SubscriberClient)
            assert used_subscriber is subscriber
        # Every producer, consumer and call above is closed: the user's clients still work.
        topic_name = f"projects/{PROJECT}/topics/{topic}"
        assert publisher.get_topic(topic=topic_name, timeout=5).name == topic_name
        subscription = subscriber.get_subscription(
            subscription=f"projects/{PROJECT}/subscriptions/{topic}-sub", timeout=5
        )
        assert subscription.topic == topic_name
    finally:
        close_clients(publisher, subscriber)


def test_clients_cloudqueue_makes_are_closed_with_their_producer_and_consumer(
    auth_server: PubSubServer,
) -> None:
    sdk = credential_sdk(auth_server)
    url = url_of(unique_name("t"))
    cloudqueue.declare(url, sdk=sdk)
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(b"x")
        made_publisher = producer.as_(PublisherClient)
    with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
        made_subscriber = consumer.as_(SubscriberClient)
        assert made_subscriber is not None
        made_subscriber.get_subscription(subscription=made_subscriber.subscription_path(
            PROJECT, url.rsplit("=", 1)[1]), timeout=5)
    assert made_publisher is not None and made_subscriber is not None
    with pytest.raises(ValueError, match="closed channel"):
        made_publisher.get_topic(topic=f"projects/{PROJECT}/topics/any", timeout=5)
    with pytest.raises(ValueError, match="closed channel"):
        made_subscriber.get_subscription(
            subscription=f"projects/{PROJECT}/subscriptions/any", timeout=5
        )
    cloudqueue.delete(url.split("?")[0], sdk=sdk)


def test_a_given_publisher_is_used_and_the_subscriber_made_from_credentials(
    auth_server: PubSubServer, open_server: PubSubServer
) -> None:
    # The user's publisher talks to the open server, the subscriber cloudqueue makes to the
    # authenticated one: which server saw a call shows which object made it.
    publisher, subscriber = _users_clients("wrapper", open_server)
    close_clients(subscriber)
    credentials_only = credential_sdk(auth_server)
    sdk = PubSubSdk(
        publisher=publisher,
        credentials=credentials_only.credentials,
        client_options=credentials_only.client_options,
    )
    url = url_of(unique_name("t"))
    cloudqueue.declare(url, sdk=credentials_only)  # the topic and subscription on auth_server
    publisher.create_topic(name=f"projects/{PROJECT}/topics/{url.split('/')[-1].split('?')[0]}")
    open_server.reset_counts()
    auth_server.reset_counts()
    try:
        with cloudqueue.open_producer(url, sdk=sdk) as producer:
            producer.send(b"x")
        with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
            assert consumer.receive(max_messages=1, wait=0.5) == []  # sent elsewhere
    finally:
        close_clients(publisher)
    assert open_server.request_counts().get("Publish") == 1
    assert "Publish" not in auth_server.request_counts()
    assert auth_server.request_counts().get("Pull", 0) >= 1
    assert "Pull" not in open_server.request_counts()
    cloudqueue.delete(url.split("?")[0], sdk=credentials_only)


# -- wrong objects ----------------------------------------------------------------------------


def test_another_providers_bundle_is_refused_naming_the_expected_class() -> None:
    with pytest.raises(InvalidArgument, match="PubSubSdk"):
        cloudqueue.open_producer(url_of("t1"), sdk=OtherSdk())


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("credentials", "ya29.not-an-object", "google.auth.credentials.Credentials"),
        ("client_options", ["api_endpoint"], "google.api_core.client_options.ClientOptions"),
        ("publisher", "Zx-not-a-client", "google.cloud.pubsub_v1.PublisherClient"),
        ("subscriber", object(), "google.cloud.pubsub_v1.SubscriberClient"),
    ],
)
def test_a_wrong_type_names_the_expected_types_not_the_value(
    field: str, value: object, expected: str
) -> None:
    with pytest.raises(InvalidArgument, match=expected) as caught:
        arguments: dict[str, Any] = {field: value}
        PubSubSdk(**arguments)
    assert f"PubSubSdk({field}=" in str(caught.value)
    if isinstance(value, str):
        assert value not in str(caught.value)


def test_a_publisher_in_the_subscriber_field_is_refused(open_server: PubSubServer) -> None:
    publisher, subscriber = _users_clients("wrapper", open_server)
    try:
        with pytest.raises(InvalidArgument, match="SubscriberClient"):
            PubSubSdk(subscriber=publisher)  # type: ignore[arg-type]
    finally:
        close_clients(publisher, subscriber)


def test_an_unknown_client_option_is_named() -> None:
    with pytest.raises(InvalidArgument, match="api_endpiont"):
        PubSubSdk(client_options={"api_endpiont": "127.0.0.1:1"})


def test_credentials_with_both_clients_given_are_refused(open_server: PubSubServer) -> None:
    publisher, subscriber = _users_clients("generated", open_server)
    try:
        with pytest.raises(InvalidArgument, match="makes none"):
            PubSubSdk(
                publisher=publisher, subscriber=subscriber, credentials=CountingCredentials(TOKEN)
            )
    finally:
        close_clients(publisher, subscriber)
