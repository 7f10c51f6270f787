"""``sdk=``: the user's own SDK objects reach the provider next to the URL, checked first.

A provider of the test's own (the memory provider under another scheme, declaring an
``sdk_type``) records the ``Url.sdk`` every call receives, so each public entry point is
seen handing the object over, and a wrong object is refused before the provider is asked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator

import pytest
from plugin_registration import registered

import cloudqueue
from cloudqueue import aio, ops
from cloudqueue.driver import (
    Declaration,
    SdkObjects,
    SubscriptionDriver,
    TopicDriver,
    Url,
    expect_type,
)
from cloudqueue.providers.memory import MemoryProvider
from cloudqueue.worker import App


@dataclasses.dataclass(frozen=True, repr=False)
class TokenSdk(SdkObjects):
    """Stands for a provider's bundle: one credential-like object."""

    token: object = None

    def __post_init__(self) -> None:
        expect_type("TokenSdk", "token", self.token, (bytes,), "bytes (a token)")


class RecordingProvider(MemoryProvider):
    schemes = ("sdkmem",)
    distribution = "cloudqueue-tests"
    sdk_type = TokenSdk

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, SdkObjects | None]] = []
        self._lock = threading.Lock()

    def _saw(self, call: str, url: Url) -> None:
        with self._lock:
            self.seen.append((call, url.sdk))

    def open_topic(self, url: Url) -> TopicDriver:
        self._saw("open_topic", url)
        return super().open_topic(url)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        self._saw("open_subscription", url)
        return super().open_subscription(url)

    def declare(self, url: Url, declaration: Declaration) -> None:
        self._saw("declare", url)
        super().declare(url, declaration)

    def purge(self, url: Url) -> None:
        self._saw("purge", url)
        super().purge(url)

    def delete(self, url: Url) -> None:
        self._saw("delete", url)
        super().delete(url)

    def stats(self, url: Url) -> cloudqueue.ops.QueueStats:
        self._saw("stats", url)
        return super().stats(url)


@pytest.fixture
def provider() -> Iterator[RecordingProvider]:
    made = RecordingProvider()
    with registered(made, "sdk-recording-provider"):
        yield made


def test_every_entry_point_hands_the_same_objects_to_the_provider(provider: RecordingProvider) -> None:
    sdk = TokenSdk(token=b"user-made")
    url = "sdkmem://orders"
    cloudqueue.declare(url, sdk=sdk)
    with cloudqueue.open_producer(url, sdk=sdk) as producer:
        producer.send(b"one")
    with cloudqueue.open_consumer(url, sdk=sdk) as consumer:
        [message] = consumer.receive(wait=1.0)
        message.ack()
    assert ops.stats(url, sdk=sdk).available == 0
    cloudqueue.purge(url, sdk=sdk)
    cloudqueue.delete(url, sdk=sdk)
    calls = [call for call, _ in provider.seen]
    assert calls == ["declare", "open_topic", "open_subscription", "stats", "purge", "delete"]
    assert all(seen is sdk for _, seen in provider.seen)


def test_the_asyncio_openers_hand_them_over_too(provider: RecordingProvider) -> None:
    sdk = TokenSdk(token=b"user-made")

    async def main() -> None:
        async with aio.open_producer("sdkmem://jobs", sdk=sdk) as producer:
            await producer.send(b"one")
        async with aio.open_consumer("sdkmem://jobs", sdk=sdk) as consumer:
            [message] = await consumer.receive(wait=1.0)
            await message.ack()

    asyncio.run(main())
    assert [seen for _, seen in provider.seen] == [sdk, sdk]


def test_a_worker_route_opens_its_consumer_with_them(provider: RecordingProvider) -> None:
    sdk = TokenSdk(token=b"user-made")
    with cloudqueue.open_producer("sdkmem://work") as producer:
        producer.send(b"job")
    app = App()
    done: list[bytes] = []

    @app.handler("sdkmem://work", sdk=sdk)
    def handle(message: cloudqueue.ReceivedMessage) -> None:
        done.append(message.body)
        app.stop()

    app.run(handle_signals=False)
    assert done == [b"job"]
    assert ("open_subscription", sdk) in provider.seen


def test_without_sdk_the_provider_gets_none(provider: RecordingProvider) -> None:
    cloudqueue.declare("sdkmem://plain")
    assert provider.seen == [("declare", None)]


def test_another_providers_objects_are_refused_naming_the_expected_class(
    provider: RecordingProvider,
) -> None:
    @dataclasses.dataclass(frozen=True, repr=False)
    class OtherSdk(SdkObjects):
        pass

    expected = r"sdk= for sdkmem:// URLs must be a .*TokenSdk, not .*OtherSdk"
    with pytest.raises(cloudqueue.InvalidArgument, match=expected):
        cloudqueue.open_producer("sdkmem://orders", sdk=OtherSdk())
    with pytest.raises(cloudqueue.InvalidArgument, match="TokenSdk"):
        cloudqueue.declare("sdkmem://orders", sdk=object())  # type: ignore[arg-type]
    assert provider.seen == []


def test_a_provider_without_an_sdk_type_refuses_them() -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"memory:// provider .* takes no SDK objects"):
        cloudqueue.open_consumer("memory://orders", sdk=TokenSdk())


def test_a_worker_refuses_a_non_sdk_object_at_registration() -> None:
    app = App()
    with pytest.raises(cloudqueue.InvalidArgument, match="sdk must be a provider's SdkObjects"):
        app.add_handler("memory://orders", print, sdk="key=secret")  # type: ignore[arg-type]


def test_field_checks_name_the_expected_types_and_never_the_value() -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as refused:
        TokenSdk(token="sk-live-secret-value")
    assert str(refused.value) == "TokenSdk(token=...) must be bytes (a token), not builtins.str"


def test_repr_names_the_fields_set_and_their_types_only() -> None:
    assert repr(TokenSdk(token=b"sk-live-secret-value")) == "TokenSdk(token=<bytes>)"
    assert repr(TokenSdk()) == "TokenSdk()"


def test_the_sdk_is_not_part_of_the_urls_text_or_equality(provider: RecordingProvider) -> None:
    from cloudqueue._registry import resolve

    _, plain = resolve("sdkmem://orders")
    _, carrying = resolve("sdkmem://orders", TokenSdk(token=b"x"))
    assert carrying == plain
    assert str(carrying) == str(plain) == "sdkmem://orders"
    assert carrying.sdk is not None and plain.sdk is None
