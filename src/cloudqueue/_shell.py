"""What the blocking and asyncio producers and consumers share: everything but waiting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Self, TypeVar

from ._engine.consuming import ConsumerCore
from ._engine.producing import ProducerCore
from ._engine.retry import RetryPolicy
from ._message import Message
from ._options import ConsumerOptions, ProducerOptions
from ._registry import resolve
from ._sdk import SdkObjects
from ._telemetry._attributes import destination_attributes
from .codecs import Codec, codec_for_value
from .errors import InvalidArgument, QueueError, SendBatchError
from .offload import Offload
from .offload._config import choose_offload, split_offload
from .offload._consuming import PayloadResolver
from .offload._opening import open_subscription, open_topic

if TYPE_CHECKING:
    from ._url import Url
    from .driver import Capabilities, SubscriptionDriver, TopicDriver

__all__ = [
    "ITERATION_WAIT", "ConsumerShell", "ProducerShell", "build_message", "checked_codec",
    "raise_failures",
]

T = TypeVar("T")

#: How long one pull of a streaming iterator may wait, so close() is prompt.
ITERATION_WAIT = 1.0


def build_message(
    body: bytes | str | Message,
    attributes: Mapping[str, str] | None,
    ordering_key: str | None,
    deduplication_id: str | None,
    delay: float | None,
) -> Message:
    if isinstance(body, Message):
        given = [
            name
            for name, value in (
                ("attributes", attributes), ("ordering_key", ordering_key),
                ("deduplication_id", deduplication_id), ("delay", delay),
            )
            if value is not None
        ]
        if given:
            raise InvalidArgument(
                f"send(Message, {'=..., '.join(given)}=...): pass these inside the Message, "
                "not beside it"
            )
        return body
    return Message(
        body,
        attributes=attributes,
        ordering_key=ordering_key,
        deduplication_id=deduplication_id,
        delay=delay,
    )


def checked_codec(codec: object) -> Codec | None:
    if isinstance(codec, type) and issubclass(codec, Codec):
        raise InvalidArgument(
            f"codec must be None or a cloudqueue.codecs.Codec, not the class {codec.__name__}: "
            f"pass an instance, {codec.__name__}()"
        )
    if codec is not None and not isinstance(codec, Codec):
        raise InvalidArgument(
            f"codec must be None or a cloudqueue.codecs.Codec, not {type(codec).__name__}"
        )
    return codec


def raise_failures(results: list[str | QueueError]) -> list[str]:
    """The ids, or the error: a single message's own, or a SendBatchError."""
    for result in results:
        if type(result) is not str:
            if len(results) == 1:
                raise result  # type: ignore[misc]
            raise SendBatchError(results)
    return results  # type: ignore[return-value]


class ProducerShell:
    def __init__(self, url: Url, driver: TopicDriver, options: ProducerOptions) -> None:
        self.url = url
        self._driver = driver
        self._core = ProducerCore(driver, str(url), options.retry, options.max_concurrent_batches)
        #: Encodes values sent that are not bytes, str or a Message; None: the codec
        #: each value's type chooses (see :mod:`cloudqueue.codecs`).
        self.codec: Codec | None = None

    @classmethod
    def open(
        cls,
        url: str,
        retry: RetryPolicy | None,
        max_concurrent_batches: int,
        offload: Offload | None = None,
        sdk: SdkObjects | None = None,
        codec: Codec | None = None,
    ) -> Self:
        options = ProducerOptions(RetryPolicy() if retry is None else retry, max_concurrent_batches)
        codec = checked_codec(codec)
        url, from_url = split_offload(url)
        offload = choose_offload(from_url, offload)
        provider, parsed = resolve(url, sdk)
        producer = cls(parsed, open_topic(provider, parsed, offload), options)
        producer.codec = codec
        return producer

    def message_for(
        self,
        body: object,
        attributes: Mapping[str, str] | None,
        ordering_key: str | None,
        deduplication_id: str | None,
        delay: float | None,
    ) -> Message:
        """The message ``send`` sends: a value that is not bytes, str or a Message is
        encoded by the producer's codec, or the one its type chooses; the codec's
        attributes (``content-type``...) go first, so the caller's own win."""
        if not isinstance(body, bytes | str | Message):
            codec = self.codec or codec_for_value(body)
            body, added = codec.encode(body, self.url.scheme)
            attributes = added if attributes is None else {**added, **attributes}
        return build_message(body, attributes, ordering_key, deduplication_id, delay)

    @property
    def capabilities(self) -> Capabilities:
        """What the destination supports, and its limits."""
        return self._driver.capabilities

    def measure(self, message: Message) -> int:
        """The size of ``message`` as the provider counts it against ``max_message_bytes``."""
        return self._driver.measure(message)

    def as_(self, native_type: type[T]) -> T | None:
        """The SDK client behind this producer, if it is a ``native_type``."""
        return self._driver.as_(native_type)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}{' closed' if self._core.closed else ''}>"


class ConsumerShell:
    def __init__(
        self,
        url: Url,
        driver: SubscriptionDriver,
        options: ConsumerOptions,
        resolver: PayloadResolver | None = None,
    ) -> None:
        self.url = url
        self._driver = driver
        # Resolves claim checks as messages are handed out (open() always gives one:
        # without offload= it still marks pointers, so that their .body raises instead of
        # passing as a body). None: hand deliveries out as they came, pointers and
        # markers included: what the operations tools (peek, redrive) want, as a
        # redrive then copies a pointer with no download and no upload.
        self._payloads = resolver
        self._core = ConsumerCore(
            driver,
            str(url),
            retry=options.retry,
            max_in_flight=options.max_in_flight,
            settle_delay=options.settle_delay,
            max_lease_extension=options.max_lease_extension,
        )
        self._driver_closed = False
        #: Decodes ``message.decode(Type)``; None: the codec the type chooses.
        self.codec: Codec | None = None

    @property
    def telemetry_attributes(self) -> dict[str, str | int]:
        """The OpenTelemetry attributes that describe this queue or subscription
        on its spans and metrics (``messaging.system``, destination names,
        ``server.address``...), for runtimes that make spans of their own."""
        return destination_attributes(self._driver, str(self.url))

    @classmethod
    def open(
        cls,
        url: str,
        max_in_flight: int,
        settle_delay: float,
        max_lease_extension: float,
        retry: RetryPolicy | None,
        offload: Offload | None = None,
        sdk: SdkObjects | None = None,
        codec: Codec | None = None,
    ) -> Self:
        codec = checked_codec(codec)
        options = ConsumerOptions(
            RetryPolicy() if retry is None else retry, max_in_flight, settle_delay,
            max_lease_extension,
        )
        url, from_url = split_offload(url)
        offload = choose_offload(from_url, offload)
        provider, parsed = resolve(url, sdk)
        driver, resolver = open_subscription(provider, parsed, offload)
        consumer = cls(parsed, driver, options, resolver)
        consumer.codec = codec
        return consumer

    @property
    def capabilities(self) -> Capabilities:
        """What the queue or subscription supports, and its limits."""
        return self._driver.capabilities

    def as_(self, native_type: type[T]) -> T | None:
        """The SDK client behind this consumer, if it is a ``native_type``."""
        return self._driver.as_(native_type)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}{' closed' if self._core.closed else ''}>"
