"""Claim-check offloading (cloudqueue.offload) on the memory and SQLite providers with
the file:// store: round trips, thresholds, configuration errors, store failures,
unreadable pointers, deletion after ack. Store-specific behaviour is in test_stores*.py;
the shared contract (every provider, every store) in test_large_payloads_*.py."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import cloudqueue
from cloudqueue import Message, Offload, PayloadUnavailable
from cloudqueue.errors import InvalidArgument, NotFound, Unavailable, register_secret
from cloudqueue.offload import PAYLOAD_ATTRIBUTE, PayloadStore

_names = itertools.count()
#: Retries give up fast: a test of a failing store must not wait for the default deadline.
QUICK = cloudqueue.RetryPolicy(initial=0.01, maximum=0.02, jitter=0.0, deadline=0.05)


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = f"claims{next(_names)}"
    if request.param == "memory":
        made = f"memory://{name}-{time.monotonic_ns()}"
    else:
        made = f"sqlite:///{tmp_path}/queues.db?queue={name}"
    cloudqueue.declare(made, lease=5.0)
    return made


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "payloads"


def stored(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


def receive_all(consumer: cloudqueue.Consumer, count: int) -> list[cloudqueue.ReceivedMessage]:
    got: list[cloudqueue.ReceivedMessage] = []
    while len(got) < count:
        batch = consumer.receive(count - len(got), 2.0)
        assert batch, f"expected {count} messages, got {len(got)}"
        got.extend(batch)
    return got


# -- round trips ------------------------------------------------------------------


def test_large_bodies_go_through_the_store_and_small_ones_inline(url: str, store_dir: Path) -> None:
    offload = Offload(f"file://{store_dir}", threshold=1000)
    large = os.urandom(300_000)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send_batch([
            Message(b"small", attributes={"kind": "small"}),
            Message(large, attributes={"kind": "large"}),
        ])
    assert len(stored(store_dir)) == 1  # only the large body was uploaded
    assert (store_dir / stored(store_dir)[0]).read_bytes() == large
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        got = {m.attributes["kind"]: m for m in receive_all(consumer, 2)}
        assert got["small"].body == b"small"
        assert got["large"].body == large
        # The marker is the library's business: users see their own attributes only.
        assert got["large"].attributes == {"kind": "large"}
        for message in got.values():
            message.ack()
    assert len(stored(store_dir)) == 1  # kept by default: a lifecycle rule expires it


def test_the_asyncio_api_offloads_and_resolves(url: str, store_dir: Path) -> None:
    offload = Offload(f"file://{store_dir}", threshold=0)

    async def main() -> list[bytes]:
        async with cloudqueue.aio.open_producer(url, offload=offload) as producer:
            await producer.send_batch([Message(b"a" * 10), Message(b"b" * 20_000)])
        async with cloudqueue.aio.open_consumer(url, offload=offload) as consumer:
            bodies: list[bytes] = []
            while len(bodies) < 2:
                for message in await consumer.receive(2, 2.0):
                    bodies.append(message.body)
                    await message.ack()
            return bodies

    assert sorted(asyncio.run(main())) == [b"a" * 10, b"b" * 20_000]
    assert len(stored(store_dir)) == 2


def test_iteration_hands_out_resolved_bodies(url: str, store_dir: Path) -> None:
    offload = Offload(f"file://{store_dir}", threshold=0)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send(b"via iteration")
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        for message in consumer:
            assert message.text() == "via iteration"
            message.ack()
            break


def test_the_threshold_is_exclusive_and_counts_body_and_attributes(
    url: str, store_dir: Path
) -> None:
    message = Message(b"x" * 500, attributes={"name": "value"})
    with cloudqueue.open_producer(url) as plain:
        size = plain.measure(message)
    assert size == 500 + len("name") + len("value")
    at = Offload(f"file://{store_dir}", threshold=size)
    with cloudqueue.open_producer(url, offload=at) as producer:
        producer.send(Message(message.body, attributes=message.attributes))
    assert stored(store_dir) == []  # exactly at the threshold: sent inline
    below = Offload(f"file://{store_dir}", threshold=size - 1)
    with cloudqueue.open_producer(url, offload=below) as producer:
        producer.send(Message(message.body, attributes=message.attributes))
        # Validation and batching count the pointer, not the payload.
        assert producer.measure(message) < size
    assert len(stored(store_dir)) == 1
    with cloudqueue.open_consumer(url, offload=at) as consumer:
        bodies = [m.body for m in receive_all(consumer, 2)]
    assert bodies == [message.body, message.body]


def test_threshold_zero_offloads_every_message_even_an_empty_one(
    url: str, store_dir: Path
) -> None:
    offload = Offload(f"file://{store_dir}", threshold=0)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send(b"")
    assert len(stored(store_dir)) == 1
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        (message,) = receive_all(consumer, 1)
        assert message.body == b"" and message.attributes == {}


def test_the_default_threshold_is_the_destinations_limit(url: str, store_dir: Path) -> None:
    with cloudqueue.open_producer(url) as plain:
        limit = plain.capabilities.limits.max_message_bytes
        with pytest.raises(cloudqueue.MessageTooLarge):
            plain.send(b"z" * (limit + 1))
    offload = Offload(f"file://{store_dir}")
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send(b"z" * limit)  # fits: inline
        producer.send(b"z" * (limit + 1))  # would not: offloaded
    assert len(stored(store_dir)) == 1
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        sizes = sorted(len(m.body) for m in receive_all(consumer, 2))
    assert sizes == [limit, limit + 1]


def test_url_parameters_configure_offloading_and_are_not_passed_to_the_provider(
    url: str, store_dir: Path
) -> None:
    joiner = "&" if "?" in url else "?"
    configured = f"{url}{joiner}offload=file://{store_dir}&offload_threshold=0&offload_delete=true"
    with cloudqueue.open_producer(configured) as producer:
        producer.send(b"by url")
        assert "offload" not in str(producer.url) and "threshold" not in repr(producer)
    assert len(stored(store_dir)) == 1
    with cloudqueue.open_consumer(configured) as consumer:
        (message,) = receive_all(consumer, 1)
        assert message.body == b"by url"
        message.ack()
    assert stored(store_dir) == []  # offload_delete=true


# -- configuration errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: Offload("ftp://host/dir"), "ftp://"),
        (lambda: Offload("payloads/here"), "no scheme"),
        (lambda: Offload("file://relative/dir"), "absolute"),
        (lambda: Offload("file:///"), "into /"),
        (lambda: Offload("s3://"), "no bucket"),
        (lambda: Offload("file:///tmp/p", threshold=-1), "threshold"),
        (lambda: Offload("file:///tmp/p", threshold=True), "threshold"),
        (lambda: Offload("file:///tmp/p", delete_after_ack="yes"), "delete_after_ack"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_offload_setting_is_refused_when_built(
    build: Callable[[], Offload], named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        build()


def test_bad_offload_url_parameters_are_refused(url: str, store_dir: Path) -> None:
    joiner = "&" if "?" in url else "?"
    cases = {
        f"{url}{joiner}offload_threshold=10": "needs offload=",
        f"{url}{joiner}offload=file://{store_dir}&offload_threshold=-5": "offload_threshold",
        f"{url}{joiner}offload=file://{store_dir}&offload_delete=maybe": "offload_delete",
        f"{url}{joiner}offload=file://{store_dir}&offload=file:///tmp/b": "given twice",
        f"{url}{joiner}offload=file://relative": "absolute",
    }
    for bad, named in cases.items():
        with pytest.raises(InvalidArgument, match=named):
            cloudqueue.open_producer(bad)
        with pytest.raises(InvalidArgument, match=named):
            cloudqueue.open_consumer(bad)


def test_url_parameters_and_the_argument_together_are_refused(url: str, store_dir: Path) -> None:
    joiner = "&" if "?" in url else "?"
    both = f"{url}{joiner}offload=file://{store_dir}"
    with pytest.raises(InvalidArgument, match="configured twice"):
        cloudqueue.open_producer(both, offload=Offload(f"file://{store_dir}"))
    with pytest.raises(InvalidArgument, match="configured twice"):
        cloudqueue.aio.open_consumer(both, offload=Offload(f"file://{store_dir}"))
    with pytest.raises(InvalidArgument, match=r"cloudqueue\.Offload"):
        cloudqueue.open_producer(url, offload=f"file://{store_dir}")  # type: ignore[arg-type]


def test_the_marker_attribute_is_reserved_on_offloading_producers(
    url: str, store_dir: Path
) -> None:
    with (
        cloudqueue.open_producer(url, offload=Offload(f"file://{store_dir}")) as producer,
        pytest.raises(InvalidArgument, match=PAYLOAD_ATTRIBUTE),
    ):
        producer.send(b"x", attributes={PAYLOAD_ATTRIBUTE: "3"})


# -- stores that fail -------------------------------------------------------------------


class BrokenStore(PayloadStore):
    """A store that is down: every call raises a retryable error (whose native text holds
    a secret, as an SDK error quoting a connection string would)."""

    scheme: ClassVar[str] = "broken"
    secret: ClassVar[str] = "AccountKey=never-shown-0451"

    def __init__(self, location: str) -> None:
        self._location = location.rstrip("/")

    @classmethod
    def open(cls, location: str) -> BrokenStore:
        register_secret(cls.secret)
        return cls(location)

    @property
    def location(self) -> str:
        return self._location

    def _down(self) -> Unavailable:
        error = Unavailable(f"store unreachable with {self.secret}")
        error.__cause__ = ConnectionError(f"refused ({self.secret})")
        return error

    def put(self, key: str, data: bytes) -> str:
        raise self._down()

    def get(self, uri: str) -> bytes:
        raise self._down()

    def delete(self, uri: str) -> None:
        raise self._down()


class BrokenStorePlugin:
    @cloudqueue.hookimpl
    def cloudqueue_payload_stores(self) -> list[type[PayloadStore]]:
        return [BrokenStore]


@pytest.fixture
def broken_store() -> Iterator[str]:
    manager = cloudqueue.plugin_manager()
    plugin = BrokenStorePlugin()
    manager.register(plugin, name="broken-store-test")
    try:
        yield "broken://bucket/prefix"
    finally:
        manager.unregister(plugin)


def test_a_store_that_is_down_fails_only_the_messages_it_would_hold(
    url: str, broken_store: str
) -> None:
    offload = Offload(broken_store, threshold=100)
    with cloudqueue.open_producer(url, offload=offload, retry=QUICK) as producer:
        with pytest.raises(cloudqueue.SendBatchError) as failure:
            producer.send_batch([Message(b"fits"), Message(b"L" * 1000), Message(b"fits too")])
        results = failure.value.results
        assert isinstance(results[0], str) and isinstance(results[2], str)
        assert isinstance(results[1], Unavailable) and results[1].retryable
        assert failure.value.retryable
        with pytest.raises(Unavailable) as single:
            producer.send(b"L" * 1000)
        for error in (failure.value, single.value):
            assert BrokenStore.secret not in str(error) and BrokenStore.secret not in repr(error)
    with cloudqueue.open_consumer(url) as consumer:
        bodies = sorted(m.body for m in receive_all(consumer, 2))
        assert consumer.receive(10, 0.3) == []  # nothing half-sent
    assert bodies == [b"fits", b"fits too"]


def test_an_unreachable_store_on_receive_is_a_retryable_payload_error(
    url: str, store_dir: Path, broken_store: str
) -> None:
    with cloudqueue.open_producer(url, offload=Offload(f"file://{store_dir}", threshold=0)) as p:
        p.send(b"payload")
    (name,) = stored(store_dir)
    # The same pointer, read by a consumer whose store cannot be reached.
    pointer = {"uri": f"{broken_store}/{name}", "size": 7,
               "sha256": hashlib.sha256(b"payload").hexdigest()}
    send_raw(url, json.dumps(pointer).encode(), {PAYLOAD_ATTRIBUTE: "7"})
    with cloudqueue.open_consumer(url, offload=Offload(broken_store)) as consumer:
        messages = receive_all(consumer, 2)
        forged = [m for m in messages if m.delivery.payload_error and
                  m.delivery.payload_error.retryable]
        assert len(forged) == 1
        with pytest.raises(PayloadUnavailable) as raised:
            forged[0].body  # noqa: B018
        assert raised.value.retryable and raised.value.code is cloudqueue.ErrorCode.UNAVAILABLE
        assert BrokenStore.secret not in str(raised.value)
        assert BrokenStore.secret not in str(raised.value.__cause__)


# -- pointers that cannot be read -------------------------------------------------------


def send_raw(url: str, body: bytes, attributes: dict[str, str]) -> None:
    """Send as a producer without offloading would: a forged or foreign pointer."""
    with cloudqueue.open_producer(url) as producer:
        producer.send(Message(body, attributes=attributes))


def test_a_missing_object_fails_that_message_only(url: str, store_dir: Path) -> None:
    offload = Offload(f"file://{store_dir}", threshold=100)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send_batch([Message(b"A" * 200), Message(b"inline"), Message(b"B" * 200)])
    first, _second = stored(store_dir)
    payloads = {name: (store_dir / name).read_bytes() for name in stored(store_dir)}
    (store_dir / first).unlink()
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        messages = receive_all(consumer, 3)
        failed = [m for m in messages if m.delivery.payload_error is not None]
        assert len(failed) == 1
        with pytest.raises(PayloadUnavailable) as raised:
            failed[0].text()
        error = raised.value
        assert error.message_id == failed[0].id and first in error.pointer
        assert error.code is cloudqueue.ErrorCode.NOT_FOUND and not error.retryable
        assert isinstance(error.__cause__, NotFound)
        assert failed[0].id in str(error) and first in str(error)
        assert "payload unavailable" in repr(failed[0])
        readable = sorted(m.body for m in messages if m is not failed[0])
        assert readable == sorted([b"inline", *(v for k, v in payloads.items() if k != first)])
        failed[0].ack()  # still settles like any other message


def test_a_changed_object_is_a_clear_error_never_a_wrong_body(url: str, store_dir: Path) -> None:
    offload = Offload(f"file://{store_dir}", threshold=0)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send(b"original body")
    (name,) = stored(store_dir)
    (store_dir / name).write_bytes(b"tampered body")  # same length, other content
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        (message,) = receive_all(consumer, 1)
        with pytest.raises(PayloadUnavailable, match="sha256"):
            message.body  # noqa: B018


def test_pointers_outside_the_consumers_location_are_never_fetched(
    url: str, tmp_path: Path, store_dir: Path
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_bytes(b"private")
    digest = hashlib.sha256(b"private").hexdigest()
    for uri in (f"file://{secret_file}", f"file://{store_dir}/../secret.txt"):
        pointer = json.dumps({"uri": uri, "size": 7, "sha256": digest}).encode()
        send_raw(url, pointer, {PAYLOAD_ATTRIBUTE: "7"})
    with cloudqueue.open_consumer(url, offload=Offload(f"file://{store_dir}")) as consumer:
        for message in receive_all(consumer, 2):
            with pytest.raises(PayloadUnavailable, match="outside this consumer's offload"):
                message.body  # noqa: B018


def test_a_consumer_without_offload_never_passes_a_pointer_off_as_a_body(
    url: str, store_dir: Path
) -> None:
    with cloudqueue.open_producer(url, offload=Offload(f"file://{store_dir}", threshold=0)) as p:
        p.send(b"needs the store")
    send_raw(url, b"not json", {PAYLOAD_ATTRIBUTE: "3"})
    with cloudqueue.open_consumer(url) as consumer:
        messages = receive_all(consumer, 2)
        with pytest.raises(PayloadUnavailable, match="no offload= location"):
            messages[0].body  # noqa: B018
        with pytest.raises(PayloadUnavailable, match="malformed pointer"):
            messages[1].text()


def test_the_worker_treats_an_unreadable_payload_as_a_handler_failure(
    url: str, store_dir: Path
) -> None:
    from cloudqueue.testing.worker import serve_until
    from cloudqueue.worker import App, FailurePolicy

    offload = Offload(f"file://{store_dir}", threshold=100)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send_batch([Message(b"G" * 500), Message(b"lost" * 100)])
    lost = next(n for n in stored(store_dir) if (store_dir / n).read_bytes().startswith(b"lost"))
    (store_dir / lost).unlink()
    app = App(policy=FailurePolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02, jitter=0.0))
    handled: list[bytes] = []

    joiner = "&" if "?" in url else "?"

    @app.handler(f"{url}{joiner}offload=file://{store_dir}")
    def handle(message: cloudqueue.ReceivedMessage) -> None:
        handled.append(message.body)

    serve_until(app, lambda: app.counters()["dead_lettered"] == 1 and len(handled) == 1)
    counters = app.counters()
    assert (counters["processed"], counters["failed"], counters["dead_lettered"]) == (1, 2, 1)
    assert handled == [b"G" * 500]
    dead_url = cloudqueue.dead_letter_url(url)
    with cloudqueue.open_consumer(dead_url, offload=offload) as consumer:
        (dead,) = receive_all(consumer, 1)
        # The dead letter still carries the pointer (and says why it failed).
        with pytest.raises(PayloadUnavailable, match=lost):
            dead.body  # noqa: B018
        assert "PayloadUnavailable" in str(dead.attributes)


# -- deleting payloads -------------------------------------------------------------------


def test_ack_deletes_the_payload_only_when_asked_and_nack_or_dead_letter_never(
    url: str, store_dir: Path
) -> None:
    producing = Offload(f"file://{store_dir}", threshold=0)
    with cloudqueue.open_producer(url, offload=producing) as producer:
        producer.send_batch([Message(f"{word}".encode()) for word in ("ack", "nack", "dead")])
    deleting = Offload(f"file://{store_dir}", delete_after_ack=True)
    with cloudqueue.open_consumer(url, offload=deleting) as consumer:
        by_body = {m.body: m for m in receive_all(consumer, 3)}
        by_body[b"nack"].nack()
        by_body[b"dead"].dead_letter("test")
        # Settlements go out in the background; close() flushes them.
    assert len(stored(store_dir)) == 3
    with cloudqueue.open_consumer(url, offload=deleting) as consumer:
        (again,) = receive_all(consumer, 1)
        assert again.body == b"nack"
        by_body[b"ack"] = again
        again.ack()
    assert len(stored(store_dir)) == 2  # the nacked one, now acked, is gone
    # The dead letter's payload was kept: it is still readable there.
    with cloudqueue.open_consumer(cloudqueue.dead_letter_url(url), offload=producing) as consumer:
        (dead,) = receive_all(consumer, 1)
        assert dead.body == b"dead"
        dead.ack()  # without delete_after_ack: kept
    assert len(stored(store_dir)) == 2


def test_redrive_copies_pointers_so_the_redriven_message_still_resolves(
    url: str, store_dir: Path
) -> None:
    offload = Offload(f"file://{store_dir}", threshold=0)
    with cloudqueue.open_producer(url, offload=offload) as producer:
        producer.send(b"P" * 5000, attributes={"k": "v"})
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        (message,) = receive_all(consumer, 1)
        message.dead_letter("try later")
    report = cloudqueue.ops.redrive(cloudqueue.dead_letter_url(url))
    assert report.moved == 1
    assert len(stored(store_dir)) == 1  # the pointer was copied: no download, no new upload
    with cloudqueue.open_consumer(url, offload=offload) as consumer:
        (back,) = receive_all(consumer, 1)
        assert back.body == b"P" * 5000 and back.attributes["k"] == "v"
        assert PAYLOAD_ATTRIBUTE not in back.attributes
