# The table keeps one case per line, however long: adding a case is adding a line.
# ruff: noqa: E501
"""Bad input, at every public entry point: a clear QueueError naming the argument,
raised before anything is sent.

One table, one parametrized test. A case is one line: what it feeds, the call (given
an :class:`Env`), the error class, and a regular expression the message must match
(naming the argument, and the limit where there is one). After each case the test
asserts that nothing arrived at the memory and SQLite destinations the case used, and
that a message held for a settlement case was neither settled nor dead-lettered. Cloud
URLs point at 127.0.0.1 ports where nothing listens: a request attempted by mistake
would surface as Unavailable (or PermissionDenied), not as the expected error.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest

import cloudqueue
from cloudqueue import (
    InvalidArgument,
    Message,
    MessageTooLarge,
    NotFound,
    QueueError,
    RetryPolicy,
    Unsupported,
)
from cloudqueue.testing.contract import unique_name

NAN, INF, HUGE = math.nan, math.inf, 1e300
SURROGATE = "\ud800"
NO_RETRY = RetryPolicy(deadline=0.0)
#: Where nothing listens: a request that should never have been made fails as Unavailable.
DEAD_PORT = "127.0.0.1:9"
SB_CONNECTION = (
    f"Endpoint=sb://{DEAD_PORT}/;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=not-a-real-key="
)


def sqs(name: str = "orders", query: str = "") -> str:
    return f"sqs://{name}?region=us-east-1&endpoint_url=http://{DEAD_PORT}{query}"


def pubsub(path: str = "my-project/orders", query: str = "") -> str:
    return f"pubsub://{path}{'?' + query if query else ''}"


def sb(entity: str = "orders", query: str = "", connection: str = SB_CONNECTION, namespace: str = "local") -> str:
    return f"azuresb://{namespace}/{entity}?connection_string={quote(connection, safe='')}{query}"


def tampered(**fields: object) -> Message:
    """A valid message whose fields were reassigned afterwards (they are plain attributes)."""
    message = Message(b"tampered")
    for name, value in fields.items():
        setattr(message, name, value)
    return message


class Env:
    """What a case works with: fresh destinations, opened lazily and closed afterwards."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        name = unique_name("bad")
        self.memory = f"memory://{name}"
        self.directory = tmp_path
        self.sqlite = f"sqlite:///{tmp_path}/bad.db?queue={name}"
        self.held_url = f"memory://{name}-held"
        self._monkeypatch = monkeypatch
        self._closers: list[Callable[[], None]] = []
        self._watched: list[str] = []  # destinations where nothing may arrive
        self._held = False

    # -- sync ------------------------------------------------------------------------

    def producer(self, url: str | None = None, **options: Any) -> cloudqueue.Producer:
        producer = cloudqueue.open_producer(url or self.memory, **options)
        self._closers.append(producer.close)
        self._watch(url or self.memory)
        return producer

    def send(self, *args: Any, **kwargs: Any) -> str:
        return self.producer().send(*args, **kwargs)

    def send_batch(self, messages: Any) -> list[str]:
        return self.producer().send_batch(messages)

    def ordered(self) -> cloudqueue.Producer:
        """A producer to a destination declared ordered (ordering keys accepted)."""
        cloudqueue.declare(self.memory, ordered=True)
        return self.producer()

    def consumer(self, url: str | None = None, **options: Any) -> cloudqueue.Consumer:
        consumer = cloudqueue.open_consumer(url or self.memory, **options)
        self._closers.append(consumer.close)
        return consumer

    def message(self) -> cloudqueue.ReceivedMessage:
        """A received message, held (not settled) by an open consumer."""
        with cloudqueue.open_producer(self.held_url) as producer:
            producer.send(b"held")
        self._held = True
        [message] = self.consumer(self.held_url).receive(max_messages=1, wait=5.0)
        return message

    def cloud(self, url: str) -> cloudqueue.Producer:
        """A producer to a cloud URL (nothing listens there; no retries)."""
        producer = cloudqueue.open_producer(url, retry=NO_RETRY)
        self._closers.append(producer.close)
        return producer

    def setenv(self, name: str, value: str) -> Env:
        self._monkeypatch.setenv(name, value)
        return self

    # -- asyncio ---------------------------------------------------------------------

    def aio(self, action: Callable[[cloudqueue.AsyncProducer], Awaitable[object]]) -> None:
        async def main() -> None:
            async with cloudqueue.aio.open_producer(self.memory) as producer:
                self._watch(self.memory)
                await action(producer)

        asyncio.run(main())

    def aio_consumer(self, action: Callable[[cloudqueue.AsyncConsumer], Awaitable[object]]) -> None:
        async def main() -> None:
            async with cloudqueue.aio.open_consumer(self.memory) as consumer:
                await action(consumer)

        asyncio.run(main())

    def aio_message(
        self, action: Callable[[cloudqueue.AsyncReceivedMessage], Awaitable[object]]
    ) -> None:
        async def main() -> None:
            async with cloudqueue.aio.open_producer(self.held_url) as producer:
                await producer.send(b"held")
            self._held = True
            async with cloudqueue.aio.open_consumer(self.held_url) as consumer:
                [message] = await consumer.receive(max_messages=1, wait=5.0)
                await action(message)

        asyncio.run(main())

    # -- afterwards ------------------------------------------------------------------

    def _watch(self, url: str) -> None:
        if url not in self._watched:
            self._watched.append(url)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    def arrived(self) -> list[str]:
        """What reached a watched destination, or came back from the held message
        (a settlement that went through would make it available again, or a dead letter)."""
        self.close()
        urls = list(self._watched)
        if self._held:
            urls += [self.held_url, cloudqueue.dead_letter_url(self.held_url)]
        found = []
        for url in urls:
            with cloudqueue.open_consumer(url) as consumer:
                found += [f"{url}: {m.body!r}" for m in consumer.receive(max_messages=10, wait=0.0)]
        return found


class Case(NamedTuple):
    what: str
    call: Callable[[Env], object]
    error: type[QueueError]
    says: str  # a regular expression the message must match


C = Case
IA = InvalidArgument

CORE: list[Case] = [
    # Message(...)
    C("Message body int", lambda e: Message(5), IA, r"body must be bytes or str"),
    C("Message body None", lambda e: Message(None), IA, r"body must be bytes or str"),
    C("Message body lone surrogate", lambda e: Message(SURROGATE), IA, r"body .*lone surrogate"),
    C("Message attributes str", lambda e: Message(b"x", attributes="abc"), IA, r"attributes must be a mapping"),
    C("Message attributes int", lambda e: Message(b"x", attributes=5), IA, r"attributes must be a mapping"),
    C("Message attributes list of pairs", lambda e: Message(b"x", attributes=[("a", "b")]), IA, r"attributes must be a mapping"),
    C("Message attribute name int", lambda e: Message(b"x", attributes={1: "a"}), IA, r"attribute names must be str"),
    C("Message attribute value int", lambda e: Message(b"x", attributes={"a": 1}), IA, r"attribute 'a' must have a str value"),
    C("Message attribute value None", lambda e: Message(b"x", attributes={"a": None}), IA, r"attribute 'a' must have a str value"),
    C("Message ordering_key int", lambda e: Message(b"x", ordering_key=5), IA, r"ordering_key must be a non-empty str"),
    C("Message ordering_key empty", lambda e: Message(b"x", ordering_key=""), IA, r"ordering_key must be a non-empty str"),
    C("Message ordering_key lone surrogate", lambda e: Message(b"x", ordering_key=SURROGATE), IA, r"ordering_key .*lone surrogate"),
    C("Message deduplication_id bytes", lambda e: Message(b"x", deduplication_id=b"id"), IA, r"deduplication_id must be a non-empty str"),
    C("Message deduplication_id lone surrogate", lambda e: Message(b"x", deduplication_id="a\udfff"), IA, r"deduplication_id .*character 1 .*lone surrogate"),
    # send
    C("send body None", lambda e: e.send(None), IA, r"body must be bytes or str"),
    C("send body float", lambda e: e.send(3.5), IA, r"body must be bytes or str"),
    C("send body lone surrogate", lambda e: e.send("ok" + SURROGATE), IA, r"body .*character 2 .*lone surrogate"),
    C("send attributes str", lambda e: e.send("ok", attributes="abc"), IA, r"attributes must be a mapping"),
    C("send attribute value lone surrogate", lambda e: e.send("ok", attributes={"k": SURROGATE}), IA, r"attribute 'k' value .*lone surrogate"),
    C("send attribute name lone surrogate", lambda e: e.send("ok", attributes={SURROGATE: "v"}), IA, r"attribute name .*lone surrogate"),
    C("send attribute name empty", lambda e: e.send("ok", attributes={"": "v"}), IA, r"attribute names must be non-empty"),
    C("send too many attributes", lambda e: e.send("ok", attributes={f"a{i}": "v" for i in range(101)}), IA, r"101 attributes.*at most 100"),
    C("send attribute value too long", lambda e: e.send("ok", attributes={"k": "v" * 5000}), IA, r"attribute 'k' value is longer than 4096 bytes"),
    C("send body too large", lambda e: e.send(b"x" * (4 * 2**20 + 1)), MessageTooLarge, r"4194305 bytes.*at most 4194304"),
    C("send delay negative", lambda e: e.send("ok", delay=-1), IA, r"delay must be a finite number of seconds >= 0"),
    C("send delay NaN", lambda e: e.send("ok", delay=NAN), IA, r"delay must be a finite number"),
    C("send delay infinity", lambda e: e.send("ok", delay=INF), IA, r"delay must be a finite number"),
    C("send delay huge", lambda e: e.send("ok", delay=HUGE), IA, r"delay of 1e\+300s exceeds 604800s"),
    C("send delay str", lambda e: e.send("ok", delay="soon"), IA, r"delay must be a number of seconds, not str"),
    C("send delay bool", lambda e: e.send("ok", delay=True), IA, r"delay must be a number of seconds, not bool"),
    C("send Message with attributes beside it", lambda e: e.send(Message("x"), attributes={"a": "b"}), IA, r"attributes=.*inside the Message"),
    C("send Message with delay beside it", lambda e: e.send(Message("x"), delay=1.0), IA, r"delay=.*inside the Message"),
    C("send ordering_key to an unordered destination", lambda e: e.send("ok", ordering_key="k"), Unsupported, r"ordering_key.*ordered=True"),
    C("send ordering_key over-long", lambda e: e.ordered().send("ok", ordering_key="k" * 257), IA, r"ordering_key is 257 characters.*at most 256"),
    C("send tampered body", lambda e: e.producer().send(tampered(body=None)), IA, r"message 0: body must be bytes"),
    # send_batch
    C("send_batch None", lambda e: e.send_batch(None), IA, r"send_batch\(messages\).*iterable of cloudqueue.Message.*not NoneType"),
    C("send_batch int", lambda e: e.send_batch(5), IA, r"messages must be an iterable.*not int"),
    C("send_batch a Message", lambda e: e.send_batch(Message("x")), IA, r"messages must be an iterable.*not Message"),
    C("send_batch a str", lambda e: e.send_batch("abc"), IA, r"messages must be an iterable.*not str"),
    C("send_batch bytes", lambda e: e.send_batch(b"abc"), IA, r"messages must be an iterable.*not bytes"),
    C("send_batch list with a str", lambda e: e.send_batch([Message("ok"), "raw"]), IA, r"message 1: expected cloudqueue.Message, not str"),
    C("send_batch list with None", lambda e: e.send_batch([Message("ok"), None]), IA, r"message 1: expected cloudqueue.Message"),
    C("send_batch generator with an int", lambda e: e.send_batch(m for m in [Message("ok"), 5]), IA, r"message 1: expected cloudqueue.Message, not int"),
    C("send_batch attribute lone surrogate", lambda e: e.send_batch([Message("ok"), Message("x", attributes={"k": SURROGATE})]), IA, r"message 1: attribute 'k' value .*lone surrogate"),
    C("send_batch tampered attributes", lambda e: e.send_batch([Message("ok"), tampered(attributes={1: "x"})]), IA, r"message 1: attribute names"),
    C("send_batch tampered attributes type", lambda e: e.send_batch([tampered(attributes="abc")]), IA, r"message 0: attributes must be a dict"),
    C("send_batch tampered delay", lambda e: e.send_batch([Message("ok"), tampered(delay=NAN)]), IA, r"message 1: delay must be a finite number"),
    # send to SQLite
    C("sqlite send body lone surrogate", lambda e: e.producer(e.sqlite).send(SURROGATE), IA, r"body .*lone surrogate"),
    C("sqlite send attribute lone surrogate", lambda e: e.producer(e.sqlite).send("ok", attributes={"k": "\udc00"}), IA, r"attribute 'k' value .*lone surrogate"),
    C("sqlite send_batch delay negative", lambda e: e.producer(e.sqlite).send_batch([Message("ok"), Message("x", delay=-1)]), IA, r"message 1: delay"),
    C("sqlite send_batch None", lambda e: e.producer(e.sqlite).send_batch(None), IA, r"messages must be an iterable"),
    # aio send
    C("aio send body lone surrogate", lambda e: e.aio(lambda p: p.send(SURROGATE)), IA, r"body .*lone surrogate"),
    C("aio send attributes int", lambda e: e.aio(lambda p: p.send("ok", attributes=5)), IA, r"attributes must be a mapping"),
    C("aio send_batch None", lambda e: e.aio(lambda p: p.send_batch(None)), IA, r"messages must be an iterable"),
    C("aio send_batch generator with None", lambda e: e.aio(lambda p: p.send_batch(m for m in [Message("ok"), None])), IA, r"message 1: expected cloudqueue.Message"),
    C("aio send Message with ordering_key beside it", lambda e: e.aio(lambda p: p.send(Message("x"), ordering_key="k")), IA, r"ordering_key=.*inside the Message"),
    # receive
    C("receive max_messages 0", lambda e: e.consumer().receive(max_messages=0, wait=0), IA, r"max_messages must be a positive int"),
    C("receive max_messages negative", lambda e: e.consumer().receive(max_messages=-1, wait=0), IA, r"max_messages must be a positive int"),
    C("receive max_messages bool", lambda e: e.consumer().receive(max_messages=True, wait=0), IA, r"max_messages must be a positive int, not True"),
    C("receive max_messages float", lambda e: e.consumer().receive(max_messages=2.5, wait=0), IA, r"max_messages must be a positive int"),
    C("receive max_messages str", lambda e: e.consumer().receive(max_messages="10", wait=0), IA, r"max_messages must be a positive int"),
    C("receive wait negative", lambda e: e.consumer().receive(wait=-1), IA, r"wait must be a finite number of seconds >= 0"),
    C("receive wait NaN", lambda e: e.consumer().receive(wait=NAN), IA, r"wait must be a finite number"),
    C("receive wait infinity", lambda e: e.consumer().receive(wait=INF), IA, r"wait must be a finite number"),
    C("receive wait str", lambda e: e.consumer().receive(wait="5"), IA, r"wait must be a number of seconds, not str"),
    C("receive wait bool", lambda e: e.consumer().receive(wait=True), IA, r"wait must be a number of seconds, not bool"),
    C("aio receive max_messages 0", lambda e: e.aio_consumer(lambda c: c.receive(max_messages=0)), IA, r"max_messages must be a positive int"),
    C("aio receive wait NaN", lambda e: e.aio_consumer(lambda c: c.receive(wait=NAN)), IA, r"wait must be a finite number"),
    # nack, extend, dead_letter
    C("nack delay negative", lambda e: e.message().nack(-1), IA, r"nack delay must be a finite number of seconds >= 0"),
    C("nack delay NaN", lambda e: e.message().nack(NAN), IA, r"nack delay must be a finite number"),
    C("nack delay infinity", lambda e: e.message().nack(INF), IA, r"nack delay must be a finite number"),
    C("nack delay huge", lambda e: e.message().nack(HUGE), IA, r"nack delay of 1e\+300s exceeds 604800s"),
    C("nack delay str", lambda e: e.message().nack("x"), IA, r"nack delay must be a number of seconds, not str"),
    C("nack delay bool", lambda e: e.message().nack(True), IA, r"nack delay must be a number of seconds, not bool"),
    C("extend negative", lambda e: e.message().extend(-1), IA, r"extend must be a finite number of seconds >= 0"),
    C("extend NaN", lambda e: e.message().extend(NAN), IA, r"extend must be a finite number"),
    C("extend infinity", lambda e: e.message().extend(INF), IA, r"extend must be a finite number"),
    C("extend str", lambda e: e.message().extend("60"), IA, r"extend must be a number of seconds, not str"),
    C("extend None", lambda e: e.message().extend(None), IA, r"extend must be a number of seconds, not NoneType"),
    C("dead_letter reason int", lambda e: e.message().dead_letter(5), IA, r"dead_letter reason must be a str, not int"),
    C("dead_letter reason None", lambda e: e.message().dead_letter(None), IA, r"dead_letter reason must be a str"),
    C("dead_letter reason lone surrogate", lambda e: e.message().dead_letter("bad " + SURROGATE), IA, r"dead_letter reason .*character 4 .*lone surrogate"),
    C("dead_letter reason over the attribute limit", lambda e: e.message().dead_letter("r" * 5_000_000), IA, r"dead_letter reason is 5000000 bytes; .*at most \d+ bytes"),
    C("aio nack delay negative", lambda e: e.aio_message(lambda m: m.nack(-1)), IA, r"nack delay must be a finite number"),
    C("aio extend NaN", lambda e: e.aio_message(lambda m: m.extend(NAN)), IA, r"extend must be a finite number"),
    C("aio dead_letter reason bytes", lambda e: e.aio_message(lambda m: m.dead_letter(b"why")), IA, r"dead_letter reason must be a str, not bytes"),
    C("aio dead_letter reason lone surrogate", lambda e: e.aio_message(lambda m: m.dead_letter("\udfff")), IA, r"dead_letter reason .*lone surrogate"),
    # declare
    C("declare dead_letter_after 0", lambda e: cloudqueue.declare(e.memory, dead_letter_after=0), IA, r"dead_letter_after must be None or an int from 1 to 2147483647"),
    C("declare dead_letter_after negative", lambda e: cloudqueue.declare(e.memory, dead_letter_after=-1), IA, r"dead_letter_after must be"),
    C("declare dead_letter_after bool", lambda e: cloudqueue.declare(e.memory, dead_letter_after=True), IA, r"dead_letter_after must be.*not True"),
    C("declare dead_letter_after float", lambda e: cloudqueue.declare(e.memory, dead_letter_after=2.5), IA, r"dead_letter_after must be"),
    C("declare dead_letter_after str", lambda e: cloudqueue.declare(e.memory, dead_letter_after="5"), IA, r"dead_letter_after must be"),
    C("declare dead_letter_after huge", lambda e: cloudqueue.declare(e.memory, dead_letter_after=2**31), IA, r"dead_letter_after must be None or an int from 1 to 2147483647"),
    C("declare sqlite dead_letter_after huge", lambda e: cloudqueue.declare(e.sqlite, dead_letter_after=10**30), IA, r"dead_letter_after must be"),
    C("declare ordered str", lambda e: cloudqueue.declare(e.memory, ordered="no"), IA, r"ordered must be True or False, not 'no'"),
    C("declare ordered int", lambda e: cloudqueue.declare(e.memory, ordered=1), IA, r"ordered must be True or False"),
    C("declare deduplicated None", lambda e: cloudqueue.declare(e.memory, deduplicated=None), IA, r"deduplicated must be True or False"),
    C("declare lease 0", lambda e: cloudqueue.declare(e.memory, lease=0), IA, r"lease must be a number of seconds above 0 and below 1000000"),
    C("declare lease negative", lambda e: cloudqueue.declare(e.memory, lease=-1), IA, r"lease must be a number of seconds above 0"),
    C("declare lease NaN", lambda e: cloudqueue.declare(e.memory, lease=NAN), IA, r"lease must be .*not nan"),
    C("declare lease infinity", lambda e: cloudqueue.declare(e.memory, lease=INF), IA, r"lease must be .*not inf"),
    C("declare lease huge", lambda e: cloudqueue.declare(e.memory, lease=1e7), IA, r"lease must be .*below 1000000"),
    C("declare lease str", lambda e: cloudqueue.declare(e.memory, lease="30"), IA, r"lease must be .*not '30'"),
    C("declare lease bool", lambda e: cloudqueue.declare(e.memory, lease=True), IA, r"lease must be .*not True"),
    # open_producer / open_consumer options, and RetryPolicy
    C("open_producer max_concurrent_batches 0", lambda e: cloudqueue.open_producer(e.memory, max_concurrent_batches=0), IA, r"max_concurrent_batches must be an int of at least 1, not 0"),
    C("open_producer max_concurrent_batches negative", lambda e: cloudqueue.open_producer(e.memory, max_concurrent_batches=-1), IA, r"max_concurrent_batches must be"),
    C("open_producer max_concurrent_batches bool", lambda e: cloudqueue.open_producer(e.memory, max_concurrent_batches=True), IA, r"max_concurrent_batches must be .*not True"),
    C("open_producer max_concurrent_batches float", lambda e: cloudqueue.open_producer(e.memory, max_concurrent_batches=1.5), IA, r"max_concurrent_batches must be"),
    C("open_producer max_concurrent_batches str", lambda e: cloudqueue.open_producer(e.memory, max_concurrent_batches="8"), IA, r"max_concurrent_batches must be .*not '8'"),
    C("open_producer max_concurrent_batches None", lambda e: cloudqueue.open_producer(e.memory, max_concurrent_batches=None), IA, r"max_concurrent_batches must be"),
    C("open_producer retry str", lambda e: cloudqueue.open_producer(e.memory, retry="x"), IA, r"retry must be a cloudqueue.RetryPolicy or None, not str"),
    C("open_producer retry int", lambda e: cloudqueue.open_producer(e.memory, retry=5), IA, r"retry must be a cloudqueue.RetryPolicy"),
    C("open_producer retry empty dict", lambda e: cloudqueue.open_producer(e.memory, retry={}), IA, r"retry must be a cloudqueue.RetryPolicy or None, not dict"),
    C("open_consumer max_in_flight 0", lambda e: cloudqueue.open_consumer(e.memory, max_in_flight=0), IA, r"max_in_flight must be an int of at least 1"),
    C("open_consumer max_in_flight bool", lambda e: cloudqueue.open_consumer(e.memory, max_in_flight=True), IA, r"max_in_flight must be .*not True"),
    C("open_consumer max_in_flight float", lambda e: cloudqueue.open_consumer(e.memory, max_in_flight=1.5), IA, r"max_in_flight must be"),
    C("open_consumer max_in_flight str", lambda e: cloudqueue.open_consumer(e.memory, max_in_flight="10"), IA, r"max_in_flight must be"),
    C("open_consumer settle_delay negative", lambda e: cloudqueue.open_consumer(e.memory, settle_delay=-1), IA, r"settle_delay must be a finite number of seconds >= 0"),
    C("open_consumer settle_delay NaN", lambda e: cloudqueue.open_consumer(e.memory, settle_delay=NAN), IA, r"settle_delay must be a finite number"),
    C("open_consumer settle_delay infinity", lambda e: cloudqueue.open_consumer(e.memory, settle_delay=INF), IA, r"settle_delay must be a finite number"),
    C("open_consumer settle_delay str", lambda e: cloudqueue.open_consumer(e.memory, settle_delay="0"), IA, r"settle_delay must be a number of seconds, not str"),
    C("open_consumer settle_delay bool", lambda e: cloudqueue.open_consumer(e.memory, settle_delay=False), IA, r"settle_delay must be a number of seconds, not bool"),
    C("open_consumer max_lease_extension negative", lambda e: cloudqueue.open_consumer(e.memory, max_lease_extension=-1), IA, r"max_lease_extension must be a finite number"),
    C("open_consumer max_lease_extension NaN", lambda e: cloudqueue.open_consumer(e.memory, max_lease_extension=NAN), IA, r"max_lease_extension must be a finite number"),
    C("open_consumer max_lease_extension infinity", lambda e: cloudqueue.open_consumer(e.memory, max_lease_extension=INF), IA, r"max_lease_extension must be a finite number"),
    C("open_consumer max_lease_extension str", lambda e: cloudqueue.open_consumer(e.memory, max_lease_extension="x"), IA, r"max_lease_extension must be a number"),
    C("open_consumer retry str", lambda e: cloudqueue.open_consumer(e.memory, retry="x"), IA, r"retry must be a cloudqueue.RetryPolicy or None, not str"),
    C("open_consumer retry bool", lambda e: cloudqueue.open_consumer(e.memory, retry=True), IA, r"retry must be a cloudqueue.RetryPolicy or None, not bool"),
    C("open_consumer bad option, sqlite file left alone", lambda e: cloudqueue.open_consumer(e.sqlite, settle_delay=-1), IA, r"settle_delay"),
    C("aio open_producer max_concurrent_batches 0", lambda e: cloudqueue.aio.open_producer(e.memory, max_concurrent_batches=0), IA, r"max_concurrent_batches must be"),
    C("aio open_producer retry str", lambda e: cloudqueue.aio.open_producer(e.memory, retry="x"), IA, r"retry must be a cloudqueue.RetryPolicy"),
    C("aio open_consumer max_in_flight bool", lambda e: cloudqueue.aio.open_consumer(e.memory, max_in_flight=True), IA, r"max_in_flight must be"),
    C("aio open_consumer settle_delay NaN", lambda e: cloudqueue.aio.open_consumer(e.memory, settle_delay=NAN), IA, r"settle_delay must be a finite number"),
    C("aio open_consumer max_lease_extension infinity", lambda e: cloudqueue.aio.open_consumer(e.memory, max_lease_extension=INF), IA, r"max_lease_extension must be a finite number"),
    C("aio open_consumer retry int", lambda e: cloudqueue.aio.open_consumer(e.memory, retry=5), IA, r"retry must be a cloudqueue.RetryPolicy"),
    C("RetryPolicy initial negative", lambda e: RetryPolicy(initial=-1), IA, r"RetryPolicy initial must be a finite number >= 0, not -1"),
    C("RetryPolicy initial str", lambda e: RetryPolicy(initial="1"), IA, r"RetryPolicy initial must be a finite number"),
    C("RetryPolicy maximum NaN", lambda e: RetryPolicy(maximum=NAN), IA, r"RetryPolicy maximum must be a finite number"),
    C("RetryPolicy multiplier below 1", lambda e: RetryPolicy(multiplier=0.5), IA, r"RetryPolicy multiplier must be a finite number >= 1"),
    C("RetryPolicy jitter above 1", lambda e: RetryPolicy(jitter=2), IA, r"RetryPolicy jitter must be a finite number from 0 to 1"),
    C("RetryPolicy deadline infinity", lambda e: RetryPolicy(deadline=INF), IA, r"RetryPolicy deadline must be a finite number"),
    C("RetryPolicy deadline bool", lambda e: RetryPolicy(deadline=True), IA, r"RetryPolicy deadline must be .*not True"),
    # URLs, whatever the provider
    C("URL None", lambda e: cloudqueue.open_producer(None), IA, r"destination URL must be a (non-empty )?string"),
    C("URL int", lambda e: cloudqueue.open_consumer(5), IA, r"destination URL must be a (non-empty )?string"),
    C("URL empty", lambda e: cloudqueue.open_producer(""), IA, r"destination URL must be a (non-empty )?string"),
    C("URL without scheme", lambda e: cloudqueue.open_producer("orders"), IA, r"malformed destination URL 'orders'.*scheme://"),
    C("URL unknown scheme", lambda e: cloudqueue.open_producer("kafka://x"), NotFound, r"no provider for URL scheme 'kafka'"),
    C("URL fragment", lambda e: cloudqueue.open_producer(e.memory + "#part"), IA, r"#fragment"),
    C("URL parameter twice", lambda e: cloudqueue.open_consumer(e.memory + "?subscription=a&subscription=b"), IA, r"parameter 'subscription' is given twice"),
    C("URL query without value", lambda e: cloudqueue.open_producer(e.memory + "?flag"), IA, r"malformed query string"),
    C("URL port out of range", lambda e: cloudqueue.open_producer("memory://q:99999999"), IA, r"malformed host or port"),
    C("dead_letter_url bad URL", lambda e: cloudqueue.dead_letter_url("memory://"), IA, r"memory URLs name a destination"),
    C("purge bad URL", lambda e: cloudqueue.purge("sqlite:///:memory:?queue=q"), IA, r"in-process database cannot be shared.*memory://"),
    C("delete URL int", lambda e: cloudqueue.delete(5), IA, r"destination URL must be a (non-empty )?string"),
    C("capabilities unknown parameter", lambda e: cloudqueue.capabilities(e.memory + "?colour=red"), IA, r"unknown URL parameter 'colour' for memory:// \(accepted: subscription\)"),
    # memory://
    C("memory unknown parameter", lambda e: e.producer(e.memory + "?colour=red"), IA, r"unknown URL parameter 'colour'.*accepted: subscription"),
    C("memory empty name", lambda e: e.producer("memory://"), IA, r"memory URLs name a destination"),
    C("memory name with a leading slash", lambda e: e.producer("memory:///q"), IA, r"memory URLs name a destination"),
    C("memory subscription empty", lambda e: e.consumer(e.memory + "?subscription="), IA, r"subscription parameter must not be empty"),
    C("memory producer to a subscription", lambda e: e.producer(e.memory + "?subscription=s"), IA, r"not to a subscription"),
    # sqlite://
    C("sqlite unknown parameter", lambda e: e.producer(e.sqlite + "&colour=red"), IA, r"unknown URL parameter 'colour'.*busy_timeout, queue, subscription, synchronous"),
    C("sqlite queue missing", lambda e: e.producer(e.sqlite.split("?")[0]), IA, r"\?queue=<name>"),
    C("sqlite queue empty", lambda e: e.producer(e.sqlite.split("?")[0] + "?queue="), IA, r"\?queue=<name>"),
    C("sqlite queue lone surrogate", lambda e: e.producer(e.sqlite.split("?")[0] + "?queue=q" + SURROGATE), IA, r"URL parameter queue .*lone surrogate"),
    C("sqlite subscription empty", lambda e: e.consumer(e.sqlite + "&subscription="), IA, r"subscription parameter must not be empty"),
    C("sqlite subscription lone surrogate", lambda e: e.consumer(e.sqlite + "&subscription=s" + SURROGATE), IA, r"URL parameter subscription .*lone surrogate"),
    C("sqlite producer to a subscription", lambda e: e.producer(e.sqlite + "&subscription=s"), IA, r"not to a subscription"),
    C("sqlite synchronous unknown", lambda e: e.producer(e.sqlite + "&synchronous=sometimes"), IA, r"synchronous='sometimes' must be one of off, normal, full, extra"),
    C("sqlite synchronous empty", lambda e: e.producer(e.sqlite + "&synchronous="), IA, r"synchronous='' must be one of"),
    C("sqlite busy_timeout not a number", lambda e: e.producer(e.sqlite + "&busy_timeout=soon"), IA, r"busy_timeout='soon' is not a number"),
    C("sqlite busy_timeout negative", lambda e: e.producer(e.sqlite + "&busy_timeout=-1"), IA, r"busy_timeout=-1.0 must be 0 to 3600 seconds"),
    C("sqlite busy_timeout NaN", lambda e: e.producer(e.sqlite + "&busy_timeout=nan"), IA, r"busy_timeout=nan must be 0 to 3600"),
    C("sqlite busy_timeout infinity", lambda e: e.producer(e.sqlite + "&busy_timeout=inf"), IA, r"busy_timeout=inf must be 0 to 3600"),
    C("sqlite busy_timeout huge", lambda e: e.producer(e.sqlite + "&busy_timeout=1e300"), IA, r"busy_timeout=1e\+300 must be 0 to 3600"),
    C("sqlite :memory:", lambda e: e.producer("sqlite:///:memory:?queue=q"), IA, r"':memory:'.*in-process database cannot be shared between a producer and a consumer.*memory://"),
    C("sqlite URI filename", lambda e: e.producer("sqlite:///file::memory:?queue=q"), IA, r"in-process database cannot be shared.*memory://"),
    C("sqlite declare :memory:", lambda e: cloudqueue.declare("sqlite:///:memory:?queue=q"), IA, r"in-process database cannot be shared"),
    C("sqlite host given", lambda e: e.producer("sqlite://host/x.db?queue=q"), IA, r"SQLite URLs have no host"),
    C("sqlite no file", lambda e: e.producer("sqlite:///?queue=q"), IA, r"SQLite URLs name a database file"),
    C("sqlite path with NUL", lambda e: e.producer("sqlite:///a\0b.db?queue=q"), IA, r"database path must not contain a NUL"),
    C("sqlite path lone surrogate", lambda e: e.producer("sqlite:///a" + SURROGATE + ".db?queue=q"), IA, r"SQLite database path .*lone surrogate"),
    C("sqlite path is a directory", lambda e: e.producer(f"sqlite:///{e.directory}/?queue=q"), IA, r"is a directory, not a file"),
    C("URL unclosed IPv6 host", lambda e: cloudqueue.open_producer("memory://[::1"), IA, r"malformed host"),
]

SQS: list[Case] = [
    C("sqs unknown parameter", lambda e: e.cloud(sqs(query="&colour=red")), IA, r"unknown URL parameter 'colour'.*endpoint_url, profile, region"),
    C("sqs subscription parameter", lambda e: e.cloud(sqs(query="&subscription=s")), IA, r"unknown URL parameter 'subscription'"),
    C("sqs empty queue name", lambda e: e.cloud(sqs(name="")), IA, r"SQS URLs name a queue.*1-80 letters"),
    C("sqs queue name with a space", lambda e: e.cloud(sqs(name="my%20orders")), IA, r"SQS URLs name a queue.*1-80 letters"),
    C("sqs queue name over-long", lambda e: e.cloud(sqs(name="q" * 81)), IA, r"1-80 letters, digits"),
    C("sqs region empty", lambda e: e.cloud(f"sqs://orders?endpoint_url=http://{DEAD_PORT}&region="), IA, r"region parameter must not be empty"),
    C("sqs region malformed", lambda e: e.cloud(sqs().replace("us-east-1", "us%20east%201")), IA, r"region='us east 1' is not an AWS region name"),
    C("sqs region lone surrogate", lambda e: e.cloud(sqs().replace("us-east-1", "us" + SURROGATE)), IA, r"region=.* is not an AWS region name"),
    C("sqs endpoint_url empty", lambda e: e.cloud("sqs://orders?region=us-east-1&endpoint_url="), IA, r"endpoint_url must be http\(s\)://host\[:port\]"),
    C("sqs endpoint_url not http", lambda e: e.cloud("sqs://orders?region=us-east-1&endpoint_url=ftp://x"), IA, r"endpoint_url must be http\(s\)://host\[:port\], not 'ftp://x'"),
    C("sqs endpoint_url unclosed IPv6", lambda e: e.cloud("sqs://orders?region=us-east-1&endpoint_url=http://[::1"), IA, r"endpoint_url must be http\(s\)://host"),
    C("sqs endpoint_url port out of range", lambda e: e.cloud("sqs://orders?region=us-east-1&endpoint_url=http://127.0.0.1:99999"), IA, r"endpoint_url must be"),
    C("sqs profile empty", lambda e: e.cloud(sqs(query="&profile=")), IA, r"profile parameter must not be empty"),
    C("sqs profile unknown, found before sending", lambda e: e.cloud(sqs(query="&profile=no-such-profile")).send("x"), IA, r"profile \(no-such-profile\) could not be found"),
    C("sqs send body lone surrogate", lambda e: e.cloud(sqs()).send(SURROGATE), IA, r"body .*lone surrogate"),
    C("sqs send eleven attributes", lambda e: e.cloud(sqs()).send("x", attributes={f"a{i}": "v" for i in range(11)}), IA, r"11 attributes.*at most"),
    C("sqs declare dead_letter_after above 1000", lambda e: cloudqueue.declare(sqs(), dead_letter_after=1001), IA, r"dead_letter_after=1001 is outside 1..1000"),
    C("sqs declare lease above 12 hours", lambda e: cloudqueue.declare(sqs(), lease=50_000), IA, r"lease of 50000s exceeds 43200s"),
    C("sqs declare ordered on a standard queue", lambda e: cloudqueue.declare(sqs(), ordered=True), Unsupported, r"ordered delivery needs an SQS FIFO queue"),
]

PUBSUB: list[Case] = [
    C("pubsub unknown parameter", lambda e: e.cloud(pubsub(query="colour=red")), IA, r"unknown URL parameter 'colour'.*accepted: subscription"),
    C("pubsub project id upper case", lambda e: e.cloud(pubsub("My-Project/orders")), IA, r"'My-Project' is not a Google Cloud project id"),
    C("pubsub topic missing", lambda e: e.cloud(pubsub("my-project")), IA, r"pubsub://<project>/<topic>"),
    C("pubsub topic too short", lambda e: e.cloud(pubsub("my-project/tp")), IA, r"'tp' is not a valid Pub/Sub topic id: 3..255 characters"),
    C("pubsub topic over-long", lambda e: e.cloud(pubsub("my-project/" + "t" * 256)), IA, r"Pub/Sub topic id: 3..255 characters"),
    C("pubsub topic starting with goog", lambda e: e.cloud(pubsub("my-project/google-orders")), IA, r"not starting with 'goog'"),
    C("pubsub subscription empty", lambda e: cloudqueue.open_consumer(pubsub(query="subscription=")), IA, r"Pub/Sub subscription id"),
    C("pubsub subscription with a space", lambda e: cloudqueue.open_consumer(pubsub(query="subscription=a%20b")), IA, r"'a b' is not a valid Pub/Sub subscription id"),
    C("pubsub subscription over-long", lambda e: cloudqueue.open_consumer(pubsub(query="subscription=" + "s" * 256)), IA, r"Pub/Sub subscription id: 3..255"),
    C("pubsub consumer without subscription", lambda e: cloudqueue.open_consumer(pubsub()), IA, r"a Pub/Sub consumer reads a subscription"),
    C("pubsub send body lone surrogate", lambda e: e.cloud(pubsub()).send(SURROGATE), IA, r"body .*lone surrogate"),
    C("pubsub declare dead_letter_after 4", lambda e: cloudqueue.declare(pubsub(query="subscription=s-1"), dead_letter_after=4), IA, r"dead_letter_after=4 is outside Pub/Sub's range"),
    C("pubsub declare lease 5", lambda e: cloudqueue.declare(pubsub(query="subscription=s-1"), lease=5), IA, r"lease=5s is outside Pub/Sub's ack deadline range"),
]

CS_ENV = "AZURE_SERVICEBUS_CONNECTION_STRING"
SERVICEBUS: list[Case] = [
    C("azuresb unknown parameter", lambda e: e.cloud(sb(query="&colour=red")), IA, r"unknown URL parameter 'colour'.*admin_ca_file, connection_string, subqueue, subscription"),
    C("azuresb namespace with a space", lambda e: e.cloud(sb(namespace="my ns")), IA, r"Service Bus namespace 'my ns'"),
    C("azuresb entity missing", lambda e: e.cloud(sb(entity="")), IA, r"Service Bus URLs name a namespace and one queue or topic"),
    C("azuresb entity with a space", lambda e: e.cloud(sb(entity="my%20orders")), IA, r"queue or topic name 'my(%20| )orders' .* 1 to 260 letters"),
    C("azuresb entity over-long", lambda e: e.cloud(sb(entity="q" * 300)), IA, r"queue or topic name .*\(300 characters\) is not valid: 1 to 260"),
    C("azuresb entity ending in a hyphen", lambda e: e.cloud(sb(entity="orders-")), IA, r"queue or topic name 'orders-'.*ending with a letter or digit"),
    C("azuresb subscription empty", lambda e: cloudqueue.open_consumer(sb(query="&subscription=")), IA, r"subscription parameter must not be empty"),
    C("azuresb subscription over-long", lambda e: cloudqueue.open_consumer(sb(query="&subscription=" + "s" * 51)), IA, r"subscription name .*\(51 characters\) is not valid: 1 to 50"),
    C("azuresb subscription with a dollar", lambda e: cloudqueue.open_consumer(sb(query="&subscription=%24all")), IA, r"subscription name '\$all'"),
    C("azuresb subqueue unknown", lambda e: cloudqueue.open_consumer(sb(query="&subqueue=transfer")), IA, r"subqueue='transfer' is not supported"),
    C("azuresb subqueue empty", lambda e: cloudqueue.open_consumer(sb(query="&subqueue=")), IA, r"subqueue='' is not supported"),
    C("azuresb producer to a subscription", lambda e: e.cloud(sb(query="&subscription=s")), IA, r"not to a subscription"),
    C("azuresb connection_string empty", lambda e: e.cloud(sb(connection="")), IA, r"connection_string parameter must not be empty"),
    C("azuresb connection_string garbage", lambda e: e.cloud(sb(connection="garbage")), IA, r"connection_string URL parameter is not a Service Bus connection string: every part"),
    C("azuresb connection_string without Endpoint", lambda e: e.cloud(sb(connection="SharedAccessKeyName=a;SharedAccessKey=b")), IA, r"connection_string .*has no Endpoint"),
    C("azuresb connection_string Endpoint not a URL", lambda e: e.cloud(sb(connection="Endpoint=ns;SharedAccessKeyName=a;SharedAccessKey=b")), IA, r"connection_string .*Endpoint is not a URL"),
    C("azuresb connection_string without key", lambda e: e.cloud(sb(connection=f"Endpoint=sb://{DEAD_PORT}/;SharedAccessKeyName=a")), IA, r"connection_string .*both SharedAccessKeyName and SharedAccessKey"),
    C("azuresb connection_string lone surrogate", lambda e: e.cloud(f"azuresb://local/orders?connection_string={SB_CONNECTION}{SURROGATE}"), IA, r"connection_string .*lone surrogate"),
    C("azuresb connection string in the environment", lambda e: e.setenv(CS_ENV, "garbage").cloud("azuresb://local/orders"), IA, rf"{CS_ENV} is not a Service Bus connection string"),
    C("azuresb admin_ca_file empty", lambda e: e.cloud(sb(query="&admin_ca_file=")), IA, r"admin_ca_file parameter must not be empty"),
    C("azuresb admin_ca_file missing", lambda e: e.cloud(sb(query="&admin_ca_file=/no/such/ca.pem")), IA, r"admin_ca_file='/no/such/ca.pem' is not a file"),
    C("azuresb declare, malformed connection string", lambda e: cloudqueue.declare(sb(connection="garbage")), IA, r"connection_string"),
    C("azuresb delete, malformed connection string", lambda e: cloudqueue.delete(sb(connection="garbage")), IA, r"connection_string"),
    C("azuresb purge, malformed connection string", lambda e: cloudqueue.purge(sb(connection="garbage")), IA, r"connection_string"),
    C("azuresb capabilities, malformed connection string", lambda e: cloudqueue.capabilities(sb(connection="garbage")), IA, r"connection_string"),
    C("azuresb consumer, malformed connection string", lambda e: cloudqueue.open_consumer(sb(connection="Endpoint=sb://x/")), IA, r"connection_string .*neither a SharedAccessKey"),
    C("azuresb declare lease above 5 minutes", lambda e: cloudqueue.declare(sb(), lease=400), IA, r"lease 400s is longer than Service Bus allows"),
]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _params() -> Iterator[Any]:
    for case in CORE:
        yield pytest.param(case, id=case.what)
    for module, cases in (
        ("cloudqueue_sqs", SQS), ("cloudqueue_pubsub", PUBSUB),
        ("cloudqueue_azure_servicebus", SERVICEBUS),
    ):
        mark = pytest.mark.skipif(not _installed(module), reason=f"{module} is not installed")
        for case in cases:
            yield pytest.param(case, id=case.what, marks=mark)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    # Cloud clients: dummy credentials and endpoints where nothing listens.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS",
                 CS_ENV, "AZURE_SERVICEBUS_ADMIN_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", DEAD_PORT)
    environment = Env(tmp_path, monkeypatch)
    yield environment
    environment.close()


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input_is_refused_clearly_before_anything_is_sent(case: Case, env: Env) -> None:
    assert issubclass(case.error, QueueError)
    with pytest.raises(case.error, match=case.says) as raised:
        case.call(env)
    assert "\n" not in str(raised.value)
    assert env.arrived() == []


def test_the_table_has_one_case_per_description() -> None:
    names = [case.what for case in (*CORE, *SQS, *PUBSUB, *SERVICEBUS)]
    assert len(names) == len(set(names))


def test_message_repr_never_raises() -> None:
    message = Message(b"body", attributes={"b": "1", "a": "2"}, ordering_key="k")
    assert repr(message) == "Message(<4 bytes>, attributes=['a', 'b'], ordering_key='k')"
    message.attributes = {1: "x", "y": 2}  # assigned after the checks
    message.body = None
    assert repr(message) == "Message(<NoneType>, attributes=['y', 1], ordering_key='k')"


def test_send_batch_takes_any_iterable_of_messages(env: Env) -> None:
    producer = env.producer()
    assert len(producer.send_batch(Message(f"{i}") for i in range(3))) == 3
    assert len(producer.send_batch((Message("t"),))) == 1
    assert producer.send_batch(iter([])) == []
    with cloudqueue.open_consumer(env.memory) as consumer:
        got = consumer.receive(max_messages=10, wait=1.0)
        assert sorted(m.body for m in got) == [b"0", b"1", b"2", b"t"]
        for message in got:
            message.ack()


# -- the command line --------------------------------------------------------------------

CLI = Path(sys.executable).with_name("cloudqueue")
_SB_GARBAGE = "azuresb://ns/orders?connection_string=garbage"
_NEEDS_SB = pytest.mark.skipif(
    not _installed("cloudqueue_azure_servicebus"), reason="cloudqueue_azure_servicebus is not installed"
)


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        # Errors the library finds are QueueErrors: status 1 (docs/errors.md, "In the CLI").
        pytest.param(["declare", _SB_GARBAGE], 1, r"InvalidArgument: .*connection_string URL parameter is not a Service Bus", marks=_NEEDS_SB),
        pytest.param(["declare", "azuresb://ns/" + "q" * 300], 1, r"InvalidArgument: .*\(300 characters\).*1 to 260", marks=_NEEDS_SB),
        (["declare", "sqlite:///:memory:?queue=q"], 1, r"InvalidArgument: .*in-process database.*memory://"),
        (["declare", "memory://q?colour=red"], 1, r"InvalidArgument: unknown URL parameter 'colour'"),
        (["declare", "memory://"], 1, r"InvalidArgument: memory URLs name a destination"),
        (["declare", "orders"], 1, r"InvalidArgument: malformed destination URL"),
        (["declare", "memory://q", "--dead-letter-after", str(2**40)], 1, r"dead_letter_after must be"),
        # Usage errors argparse finds: status 2.
        (["declare", "memory://q", "--lease", "nan"], 2, r"argument --lease: 'nan' must be a finite number"),
        (["declare", "memory://q", "--lease", "0"], 2, r"argument --lease: '0' must be above 0"),
        (["declare", "memory://q", "--dead-letter-after", "x"], 2, r"argument --dead-letter-after"),
    ],
)
def test_cli_declare_reports_bad_input_in_one_line(
    argv: list[str], code: int, says: str, tmp_path: Path
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "CLOUDQUEUE_"))}
    done = subprocess.run(
        [str(CLI), *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=environment,
    )
    assert "Traceback" not in done.stderr
    assert (done.returncode, done.stdout) == (code, "")
    [line] = done.stderr.splitlines()
    assert re.search(says, line), line
    assert line.startswith(("cloudqueue: error: ", "cloudqueue declare: error: "))
    assert "garbage" not in line  # a connection string is never echoed
