"""The producer side: a TopicDriver decorator that uploads large bodies and sends pointers.

It sits between the portable layer and any provider's driver, so every provider
offloads with no code of its own. The engine validates and batches with
:meth:`OffloadingTopic.measure`, which counts the pointer (and its marker), not
the payload.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from .._message import Message
from ..driver import Capabilities, TopicDriver
from ..errors import QueueError
from ._config import Offload
from ._pointer import aws_pointer, marker_names, our_pointer
from ._store import PayloadStore

__all__ = ["OffloadingTopic"]

log = logging.getLogger("cloudqueue")

#: Uploads of one batch run this many at a time: enough to overlap round trips,
#: few enough not to hold many large bodies in flight per producer.
_UPLOADS_AT_ONCE = 4
#: A key's length is fixed (32 hex digits), so the pointer's size is known before upload.
_SAMPLE_KEY = "0" * 32
_SAMPLE_DIGEST = "0" * 64


class OffloadingTopic(TopicDriver):
    def __init__(
        self, inner: TopicDriver, store: PayloadStore, offload: Offload, *, aws_format: bool
    ) -> None:
        self._inner = inner
        self._store = store
        self._threshold = offload.threshold
        self._aws_format = aws_format
        self._reserved = marker_names(aws_format)
        self._capabilities: tuple[Capabilities, Capabilities] | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def capabilities(self) -> Capabilities:
        inner = self._inner.capabilities
        cached = self._capabilities
        if cached is not None and cached[0] is inner:
            return cached[1]
        # The marker attributes are reserved: a user's attribute of that name would
        # make an ordinary message look like a pointer to consumers.
        limits = dataclasses.replace(
            inner.limits,
            reserved_attribute_prefixes=(*inner.limits.reserved_attribute_prefixes,
                                         *self._reserved),
        )
        mine = dataclasses.replace(inner, limits=limits)
        self._capabilities = (inner, mine)
        return mine

    def _offloads(self, message: Message) -> bool:
        """Whether ``message`` goes by claim check: its size as the user measures it
        (``Producer.measure``) is over the threshold.

        Trace context the engine added does not count: tracing on or off, the same
        messages are offloaded (the engine leaves trace context off a message it would
        push over the provider's limit). A body longer than the threshold is over it
        without measuring: drivers count at least every body byte, and encoding a large
        body just to measure it (SQS's base64) costs more than the upload's round trip.
        """
        limits = self._inner.capabilities.limits
        threshold = limits.max_message_bytes if self._threshold is None else self._threshold
        if threshold == 0 or len(message.body) > threshold:
            return True
        carried = limits.trace_carrier.attribute_names
        if any(name in message.attributes for name in carried):
            message = self._with_attributes(message, {
                name: value for name, value in message.attributes.items() if name not in carried
            })
        return self._inner.measure(message) > threshold

    def measure(self, message: Message) -> int:
        if not self._offloads(message):
            return self._inner.measure(message)
        sample = f"{self._store.location}/{_SAMPLE_KEY}"
        return self._inner.measure(self._pointer_message(message, sample, _SAMPLE_DIGEST))

    def _pointer_message(self, message: Message, uri: str, digest: str) -> Message:
        size = len(message.body)
        if self._aws_format:
            body, markers = aws_pointer(uri, size)
        else:
            body, markers = our_pointer(uri, size, digest)
        return self._with_attributes(message, {**message.attributes, **markers}, body)

    @staticmethod
    def _with_attributes(
        message: Message, attributes: dict[str, str], body: bytes | None = None
    ) -> Message:
        """A copy of ``message`` with these attributes (already checked: set, not
        validated again) and, if given, another body."""
        copy = Message(
            message.body if body is None else body,
            ordering_key=message.ordering_key,
            deduplication_id=message.deduplication_id,
            delay=message.delay,
        )
        copy.attributes = attributes
        return copy

    # -- sending -----------------------------------------------------------------

    def _uploaders(self) -> ThreadPoolExecutor:
        """The producer's upload threads, made on first use and shared by its concurrent
        batches: started once (not per batch), and at most this many bodies in flight."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_UPLOADS_AT_ONCE, "cloudqueue-offload")
            return self._pool

    def _upload(self, message: Message) -> tuple[Message, str]:
        uri = self._store.put(uuid.uuid4().hex, message.body)
        # The AWS format has no digest: hashing a large body for it would be wasted.
        digest = "" if self._aws_format else hashlib.sha256(message.body).hexdigest()
        return self._pointer_message(message, uri, digest), uri

    def _prepare(self, messages: Sequence[Message]) -> _Prepared:
        """Upload what is too large; the messages to send and the per-message outcome so far."""
        chosen = [i for i, m in enumerate(messages) if self._offloads(m)]
        prepared = _Prepared(list(messages))
        if not chosen:
            return prepared

        def upload(index: int) -> tuple[int, tuple[Message, str] | QueueError]:
            try:
                return index, self._upload(messages[index])
            except QueueError as error:
                return index, error

        if len(chosen) == 1:
            outcomes: Iterable[tuple[int, tuple[Message, str] | QueueError]] = [
                upload(chosen[0])
            ]
        else:
            outcomes = list(self._uploaders().map(upload, chosen))
        for index, outcome in outcomes:
            if isinstance(outcome, QueueError):
                prepared.failed[index] = outcome
            else:
                prepared.sending[index], prepared.uris[index] = outcome
        return prepared

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        prepared = self._prepare(messages)
        try:
            results = self._inner.send_batch(prepared.to_send()) if prepared.to_send() else []
        except BaseException:
            self._discard(prepared.uploaded_uris(None))
            raise
        merged = prepared.merge(results)
        self._discard(prepared.uploaded_uris(results))
        return merged

    async def asend_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        if not any(self._offloads(m) for m in messages):
            return await self._inner.asend_batch(messages)
        prepared = await asyncio.to_thread(self._prepare, messages)
        try:
            to_send = prepared.to_send()
            results = await self._inner.asend_batch(to_send) if to_send else []
        except BaseException:
            await asyncio.to_thread(self._discard, prepared.uploaded_uris(None))
            raise
        merged = prepared.merge(results)
        unsent = prepared.uploaded_uris(results)
        if unsent:
            await asyncio.to_thread(self._discard, unsent)
        return merged

    def _discard(self, uris: list[str]) -> None:
        """Delete payloads whose pointer was not sent: best effort, an orphan is only storage."""
        for uri in uris:
            try:
                self._store.delete(uri)
            except QueueError as error:
                log.warning("could not delete the unsent payload %s: %s", uri, error)

    # -- the rest is the inner driver's --------------------------------------------

    def native_objects(self) -> Iterable[object]:
        return self._inner.native_objects()

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return self._inner.telemetry_attributes()

    def _stop_uploaders(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._stop_uploaders()
            self._store.close()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            await asyncio.to_thread(self._stop_uploaders)
            await asyncio.to_thread(self._store.close)


@dataclasses.dataclass(slots=True)
class _Prepared:
    """One batch after uploading: pointers in place of large bodies, failed uploads aside."""

    messages: list[Message]
    failed: dict[int, QueueError] = dataclasses.field(default_factory=dict)
    sending: dict[int, Message] = dataclasses.field(default_factory=dict)
    uris: dict[int, str] = dataclasses.field(default_factory=dict)

    def _order(self) -> list[int]:
        return [i for i in range(len(self.messages)) if i not in self.failed]

    def to_send(self) -> list[Message]:
        return [self.sending.get(i, self.messages[i]) for i in self._order()]

    def merge(self, results: Sequence[str | QueueError]) -> list[str | QueueError]:
        """Per original message: the inner driver's result, or its upload's error."""
        sent = iter(results)
        return [self.failed[i] if i in self.failed else next(sent)
                for i in range(len(self.messages))]

    def uploaded_uris(self, results: Sequence[str | QueueError] | None) -> list[str]:
        """URIs of uploaded payloads whose pointer did not go out (all of them when
        ``results`` is None: the whole send failed)."""
        order = self._order()
        outcome = dict(zip(order, results, strict=True)) if results is not None else {}
        return [
            uri for index, uri in self.uris.items()
            if results is None or isinstance(outcome[index], QueueError)
        ]
