"""The consumer side: pointers are resolved when messages are handed out, and
payloads deleted after a successful ack when configured.

Resolution happens at hand-out (``Consumer.receive``, iteration,
``AsyncConsumer.receive``), not at prefetch, so memory holds the payloads of
the messages handed out, not of every prefetched one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..driver import BatchErrors, Capabilities, Delivery, SubscriptionDriver
from ..errors import InvalidArgument, PayloadUnavailable, QueueError
from ._pointer import ClaimCheck, marker_names, read_pointer
from ._store import PayloadStore

__all__ = ["OffloadingSubscription", "PayloadResolver"]

log = logging.getLogger("cloudqueue")

#: Payloads of one hand-out fetched this many at a time.
_FETCHES_AT_ONCE = 4


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A settlement token of a message whose payload is deleted once it is acked."""

    token: object
    uri: str


def _unwrap(token: object) -> object:
    return token.token if type(token) is _Claimed else token


class PayloadResolver:
    """Turns handed-out pointer deliveries into their payloads (or their error).

    Every consumer has one, with or without ``offload``: a pointer reaching a
    consumer that cannot fetch it must fail loudly on ``.body``, never pass as
    an ordinary body.
    """

    def __init__(
        self, store: PayloadStore | None, *, aws_format: bool, delete_after_ack: bool = False
    ) -> None:
        self._store = store
        self._aws = aws_format
        self._markers = marker_names(aws_format)
        #: The same names as a set: ``keys().isdisjoint`` runs in C, and this check is
        #: made for every message handed out by every consumer, offload or not.
        self._marker_set = frozenset(self._markers)
        self._delete_after_ack = delete_after_ack and store is not None

    def _pending(self, deliveries: Sequence[Delivery]) -> list[tuple[Delivery, ClaimCheck | str]]:
        """The pointer deliveries, their markers removed, with their claim check
        (or why it cannot be read)."""
        found: list[tuple[Delivery, ClaimCheck | str]] = []
        markers = self._marker_set
        for delivery in deliveries:
            attributes = delivery.attributes
            # Most messages carry no attributes at all: that test is a third of this one.
            if not attributes or attributes.keys().isdisjoint(markers):
                continue
            try:
                claim: ClaimCheck | str | None = read_pointer(attributes, delivery.body, self._aws)
            except InvalidArgument as error:
                claim = f"a malformed pointer: {error}"
            # A new dict: an in-process provider may share the one it stores.
            delivery.attributes = {k: v for k, v in attributes.items() if k not in markers}
            if claim is not None:
                found.append((delivery, claim))
        return found

    def resolve(self, deliveries: Sequence[Delivery]) -> None:
        """Fetch the payloads of the pointer deliveries among ``deliveries``, in place."""
        pending = self._pending(deliveries)
        if len(pending) == 1:
            self._resolve_one(*pending[0])
        elif pending:
            with ThreadPoolExecutor(min(_FETCHES_AT_ONCE, len(pending))) as pool:
                list(pool.map(lambda entry: self._resolve_one(*entry), pending))

    async def aresolve(self, deliveries: Sequence[Delivery]) -> None:
        """:meth:`resolve` for the asyncio API: stores block, so they run in threads."""
        markers = self._marker_set
        if not all(d.attributes.keys().isdisjoint(markers) for d in deliveries):
            await asyncio.to_thread(self.resolve, deliveries)

    def _resolve_one(self, delivery: Delivery, claim: ClaimCheck | str) -> None:
        if isinstance(claim, str):
            delivery.payload_error = PayloadUnavailable(
                f"message {delivery.id}: the payload cannot be read: it carries {claim}",
                message_id=delivery.id, pointer=delivery.body[:300].decode(errors="replace"),
            )
            return
        uri, store = claim.uri, self._store
        if store is None:
            delivery.payload_error = _unavailable(
                delivery, uri, "this consumer has no offload= location configured"
            )
            return
        if not store.contains(uri):
            delivery.payload_error = _unavailable(
                delivery, uri,
                f"it is outside this consumer's offload location {store.location}; "
                "only payloads inside it are fetched",
            )
            return
        if self._delete_after_ack:
            delivery.token = _Claimed(delivery.token, uri)
        try:
            payload = store.get(uri)
        except QueueError as error:
            delivery.payload_error = _unavailable(delivery, uri, str(error), error)
            return
        if claim.sha256 is not None and (
            len(payload) != claim.size or hashlib.sha256(payload).hexdigest() != claim.sha256
        ):
            delivery.payload_error = _unavailable(
                delivery, uri,
                f"the stored object ({len(payload)} bytes) does not match the pointer's "
                f"size ({claim.size} bytes) and sha256: it was changed or replaced",
            )
            return
        delivery.body = payload


def _unavailable(
    delivery: Delivery, uri: str, why: str, cause: QueueError | None = None
) -> PayloadUnavailable:
    return PayloadUnavailable(
        f"message {delivery.id}: the payload at {uri} cannot be read: {why}",
        message_id=delivery.id, pointer=uri, cause=cause,
    )


class OffloadingSubscription(SubscriptionDriver):
    """Wraps a consumer's driver when ``offload`` is configured: unwraps the tokens
    of pointer messages, deletes their payloads after a successful ack when
    ``delete_after_ack``, and closes the store with the driver."""

    def __init__(self, inner: SubscriptionDriver, store: PayloadStore) -> None:
        self._inner = inner
        self._store = store

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        return self._inner.receive_batch(max_messages, wait)

    async def areceive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
        return await self._inner.areceive_batch(max_messages, wait)

    def ack(self, tokens: Sequence[object]) -> BatchErrors:
        errors = self._inner.ack([_unwrap(token) for token in tokens])
        self._delete_acked(tokens, errors)
        return errors

    async def aack(self, tokens: Sequence[object]) -> BatchErrors:
        errors = await self._inner.aack([_unwrap(token) for token in tokens])
        if any(type(token) is _Claimed for token in tokens):
            await asyncio.to_thread(self._delete_acked, tokens, errors)
        return errors

    def _delete_acked(self, tokens: Sequence[object], errors: BatchErrors) -> None:
        """Delete the payloads of the acked messages (never of failed acks): best effort,
        a payload left behind is only storage until the lifecycle rule expires it."""
        for index, token in enumerate(tokens):
            if type(token) is not _Claimed or (errors is not None and errors[index] is not None):
                continue
            try:
                self._store.delete(token.uri)
            except QueueError as error:
                log.warning("could not delete the payload %s after its ack: %s", token.uri, error)

    def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return self._inner.nack(_unwrapped(entries))

    async def anack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
        return await self._inner.anack(_unwrapped(entries))

    def release(self, tokens: Sequence[object]) -> BatchErrors:
        return self._inner.release([_unwrap(token) for token in tokens])

    async def arelease(self, tokens: Sequence[object]) -> BatchErrors:
        return await self._inner.arelease([_unwrap(token) for token in tokens])

    def extend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        return self._inner.extend(_unwrapped(entries))

    async def aextend(self, entries: Sequence[tuple[object, float]]) -> list[float | QueueError]:
        return await self._inner.aextend(_unwrapped(entries))

    def dead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        return self._inner.dead_letter(_unwrapped(entries))

    async def adead_letter(self, entries: Sequence[tuple[object, str]]) -> BatchErrors:
        return await self._inner.adead_letter(_unwrapped(entries))

    def interrupt_receives(self) -> None:
        self._inner.interrupt_receives()

    async def ainterrupt_receives(self) -> None:
        await self._inner.ainterrupt_receives()

    def native_objects(self) -> Iterable[object]:
        return self._inner.native_objects()

    def telemetry_attributes(self) -> Mapping[str, str | int]:
        return self._inner.telemetry_attributes()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._store.close()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            await asyncio.to_thread(self._store.close)


def _unwrapped(entries: Sequence[tuple[object, Any]]) -> list[tuple[object, Any]]:
    return [(_unwrap(token), argument) for token, argument in entries]
