"""The portable layer: public surface, URLs, errors, plugins, retries, batching, coalescing."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from plugin_registration import registered

import cloudqueue
from cloudqueue import _registry, wire
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
from cloudqueue.errors import ErrorCode, QueueError, translate

EXPECTED_EXPORTS = {
    "AlreadyExists", "AsyncConsumer", "AsyncProducer", "AsyncReceivedMessage", "Capabilities",
    "Closed", "Consumer", "DeadlineExceeded", "DecodeError", "ErrorCode", "FailedPrecondition",
    "Internal", "codecs",
    "InvalidArgument", "LeaseLost", "Limits", "Message", "MessageTooLarge", "NotFound", "PermissionDenied",
    "Producer", "QueueError", "ReceivedMessage", "ResourceExhausted", "RetryPolicy", "SdkObjects",
    "SendBatchError", "Settlement", "Unavailable", "Unknown", "Unsupported", "aio", "capabilities",
    "dead_letter_url", "declare", "delete", "hookimpl", "open_consumer", "open_producer",
    "filters", "offload", "Offload", "PayloadUnavailable", "ops", "plugin_manager", "purge", "where",
}


def test_public_surface_is_exactly_the_documented_names() -> None:
    assert set(cloudqueue.__all__) == EXPECTED_EXPORTS
    for name in EXPECTED_EXPORTS:
        assert hasattr(cloudqueue, name), name
    assert {"open_producer", "open_consumer", "AsyncProducer", "AsyncConsumer"} <= set(
        cloudqueue.aio.__all__
    )


def test_wire_names_are_public_and_never_change() -> None:
    # Queues already hold messages carrying these names: renaming one breaks their readers.
    assert all(hasattr(wire, name) for name in wire.__all__)
    assert (wire.RESERVED_PREFIX, wire.ENCODING_ATTRIBUTE, wire.DEAD_LETTER_REASON) == (
        "cloudqueue.", "cloudqueue.encoding", "dead_letter_reason")
    assert (wire.MESSAGE_ID_ATTRIBUTE, wire.PAYLOAD_ATTRIBUTE) == ("cloudqueue.id", "cloudqueue.payload")


# -- a test provider, registered by hand like a third-party plugin ---------------


class FlakyTopic(TopicDriver):
    """Sends into a memory queue; fails entries as its script says."""

    def __init__(self, inner: TopicDriver, plan: FlakyPlan) -> None:
        self.inner = inner
        self.plan = plan

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(limits=LIMITS)

    def send_batch(self, messages: Sequence[cloudqueue.Message]) -> list[str | QueueError]:
        time.sleep(self.plan.latency)  # a network round trip lets callers overlap
        with self.plan.lock:
            self.plan.calls.append(len(messages))
            if self.plan.whole_call_failures:
                self.plan.whole_call_failures -= 1
                raise cloudqueue.Unavailable("connection reset")
        outcomes: list[str | QueueError] = []
        for message in messages:
            body = message.body.decode()
            if body.startswith("bad"):
                outcomes.append(cloudqueue.InvalidArgument(f"{body} refused"))
            elif body.startswith("flaky") and self.plan.flaky_left.get(body, 0) > 0:
                self.plan.flaky_left[body] -= 1
                outcomes.append(cloudqueue.ResourceExhausted("throttled"))
            else:
                sent = self.inner.send_batch([message])[0]
                outcomes.append(sent)
        return outcomes

    def native_objects(self) -> Iterator[object]:
        yield self.plan


class FlakyPlan:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[int] = []
        self.whole_call_failures = 0
        self.flaky_left: dict[str, int] = {}
        self.latency = 0.0
        self.active = 0
        self.most_active = 0


LIMITS = Limits(
    max_message_bytes=1000, max_send_batch=10, max_send_batch_bytes=5000, max_receive_batch=10,
    max_settle_batch=10, max_attributes=3, max_attribute_name_bytes=20,
    max_attribute_value_bytes=50, attribute_name_pattern=r"[a-z]+", max_delay=None,
)


class FlakyProvider(Provider):
    schemes = ("flaky",)
    distribution = "cloudqueue-tests"
    parameters = frozenset({"subscription", "token"})
    secret_parameters = frozenset({"token"})

    def __init__(self) -> None:
        self.plan = FlakyPlan()

    def _memory_url(self, url: Url) -> Url:
        return url.replace(scheme="memory", params={})

    def open_topic(self, url: Url) -> TopicDriver:
        memory = _registry.provider_for("memory")
        return FlakyTopic(memory.open_topic(self._memory_url(url)), self.plan)

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        return _registry.provider_for("memory").open_subscription(self._memory_url(url))

    def capabilities(self, url: Url) -> Capabilities:
        return Capabilities(limits=LIMITS)

    def declare(self, url: Url, declaration: Declaration) -> None:
        raise cloudqueue.PermissionDenied(f"no rights to declare {url}")

    def dead_letter_url(self, url: Url) -> Url:
        return url

    def purge(self, url: Url) -> None:
        pass

    def delete(self, url: Url) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[FlakyProvider]:
    provider = FlakyProvider()
    with registered(provider, "flaky-tests"):
        yield provider


FAST_RETRY = cloudqueue.RetryPolicy(initial=0.01, maximum=0.05, deadline=5.0)


# -- URLs and discovery ---------------------------------------------------------


def test_unknown_scheme_names_installed_providers_and_where_to_get_it() -> None:
    with pytest.raises(cloudqueue.NotFound) as info:
        cloudqueue.open_producer("sqsx://orders")
    assert "memory" in str(info.value) and "sqsx" in str(info.value)
    if "sqs" not in _registry.providers():
        with pytest.raises(cloudqueue.NotFound, match=r"cloudqueue\[sqs\]"):
            cloudqueue.open_producer("sqs://orders")


@pytest.mark.parametrize(
    "url",
    ["orders", "", "://orders", "memory://orders#frag", "memory://a?x=1&x=2", "memory://?a"],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument):
        cloudqueue.open_producer(url)


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match="fifo") as info:
        cloudqueue.open_producer("memory://orders?fifo=true")
    assert "subscription" in str(info.value)  # lists what is accepted


def test_empty_destination_names_are_refused() -> None:
    for url in ("memory://", "memory://orders?subscription="):
        with pytest.raises(cloudqueue.InvalidArgument):
            cloudqueue.open_consumer(url)


def test_secrets_never_show_in_reprs_or_errors(flaky: FlakyProvider) -> None:
    secret = "s3cr3t-t0ken-value"
    producer = cloudqueue.open_producer(f"flaky://user:{secret}@orders?token={secret}")
    assert secret not in repr(producer) and secret not in str(producer.url)
    with pytest.raises(cloudqueue.PermissionDenied) as info:
        cloudqueue.declare(f"flaky://orders?token={secret}")
    assert secret not in str(info.value)
    # An SDK echoing the secret in its own error text is scrubbed too.
    error = cloudqueue.Unavailable(f"could not connect with token={secret}")
    assert secret not in str(error)
    producer.close()


def test_plugins_claiming_the_same_scheme_are_reported(flaky: FlakyProvider) -> None:
    with registered(FlakyProvider(), "flaky-twin"), pytest.raises(
        cloudqueue.InvalidArgument, match="two plugins claim"
    ):
        cloudqueue.open_producer("flaky://orders")


# -- errors -------------------------------------------------------------------


class SdkError(Exception):
    pass


class SdkThrottled(SdkError):
    pass


def test_translate_maps_typed_errors_through_the_mro_and_keeps_the_cause() -> None:
    table = {SdkError: ErrorCode.INTERNAL, SdkThrottled: ErrorCode.RESOURCE_EXHAUSTED}
    with pytest.raises(cloudqueue.ResourceExhausted) as info:
        with translate(table, "send"):
            raise SdkThrottled("slow down")
    assert info.value.retryable
    assert isinstance(info.value.__cause__, SdkThrottled)
    assert info.value.as_(SdkThrottled) is info.value.__cause__
    assert info.value.as_(KeyError) is None
    with pytest.raises(cloudqueue.Unknown):
        with translate(table, "send"):
            raise KeyError("unmapped")


def test_cancellation_is_never_wrapped() -> None:
    with pytest.raises(asyncio.CancelledError):
        with translate({BaseException: ErrorCode.INTERNAL}, "receive"):
            raise asyncio.CancelledError()


def test_message_too_large_is_an_invalid_argument() -> None:
    assert issubclass(cloudqueue.MessageTooLarge, cloudqueue.InvalidArgument)
    assert cloudqueue.MessageTooLarge("x").code is ErrorCode.INVALID_ARGUMENT


def test_message_bodies() -> None:
    assert cloudqueue.Message("grüße").body == "grüße".encode()
    assert cloudqueue.Message(bytearray(b"ab")).body == b"ab"
    with pytest.raises(cloudqueue.InvalidArgument, match="bytes or str"):
        cloudqueue.Message(42)  # type: ignore[arg-type]


# -- validation against the provider's limits ----------------------------------


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (cloudqueue.Message(b"x" * 1001), "1000 bytes"),
        (cloudqueue.Message(b"x", attributes={"a": "1", "b": "2", "c": "3", "d": "4"}), "at most 3"),
        (cloudqueue.Message(b"x", attributes={"Upper": "1"}), r"\[a-z\]\+"),
        (cloudqueue.Message(b"x", attributes={"a" * 21: "1"}), "20 bytes"),
        (cloudqueue.Message(b"x", attributes={"a": "v" * 51}), "50 bytes"),
    ],
)
def test_messages_are_checked_against_the_limits_before_sending(
    flaky: FlakyProvider, message: cloudqueue.Message, match: str
) -> None:
    with cloudqueue.open_producer("flaky://limits") as producer:
        with pytest.raises(cloudqueue.InvalidArgument, match=match):
            producer.send_batch([cloudqueue.Message(b"fine"), message])
    assert flaky.plan.calls == []


def test_unsupported_features_are_refused_before_sending(flaky: FlakyProvider) -> None:
    with cloudqueue.open_producer("flaky://features") as producer:
        for options in ({"ordering_key": "k"}, {"deduplication_id": "d"}, {"delay": 5.0}):
            with pytest.raises(cloudqueue.Unsupported):
                producer.send(b"x", **options)  # type: ignore[arg-type]
        with pytest.raises(cloudqueue.InvalidArgument):
            producer.send(b"x", delay=-1.0)
    assert flaky.plan.calls == []


# -- batching, retries, partial failure --------------------------------------------


def test_sends_are_split_by_count_and_bytes(flaky: FlakyProvider) -> None:
    with cloudqueue.open_producer("flaky://split") as producer:
        ids = producer.send_batch([cloudqueue.Message(b"x" * 900) for _ in range(12)])
    assert len(ids) == 12
    # 5,000 bytes per request fit five 900-byte messages.
    assert sorted(flaky.plan.calls) == [2, 5, 5]  # the requests travel together: any order


def test_retryable_entries_are_retried_alone_and_others_reported(flaky: FlakyProvider) -> None:
    flaky.plan.flaky_left = {"flaky-1": 2}
    with cloudqueue.open_producer("flaky://partial", retry=FAST_RETRY) as producer:
        with pytest.raises(cloudqueue.SendBatchError) as info:
            producer.send_batch(
                [cloudqueue.Message(b) for b in (b"ok-0", b"flaky-1", b"bad-2", b"ok-3")]
            )
    results = info.value.results
    assert isinstance(results[0], str) and isinstance(results[1], str)
    assert isinstance(results[2], cloudqueue.InvalidArgument)
    assert isinstance(results[3], str)
    assert info.value.sent_ids[2] is None
    assert flaky.plan.calls == [4, 1, 1]  # the flaky one alone, twice
    with cloudqueue.open_consumer("memory://partial") as consumer:
        bodies = sorted(m.body for m in consumer.receive(max_messages=10, wait=1))
    assert bodies == [b"flaky-1", b"ok-0", b"ok-3"]


def test_a_failed_single_send_raises_its_own_error(flaky: FlakyProvider) -> None:
    with cloudqueue.open_producer("flaky://single") as producer:
        with pytest.raises(cloudqueue.InvalidArgument, match="bad-x refused"):
            producer.send(b"bad-x")


def test_whole_call_outages_are_retried_with_backoff(flaky: FlakyProvider) -> None:
    flaky.plan.whole_call_failures = 3
    with cloudqueue.open_producer("flaky://outage", retry=FAST_RETRY) as producer:
        producer.send(b"eventually")
    assert flaky.plan.calls == [1, 1, 1, 1]


def test_retries_stop_at_the_deadline(flaky: FlakyProvider) -> None:
    flaky.plan.whole_call_failures = 10**6
    policy = cloudqueue.RetryPolicy(initial=0.02, maximum=0.05, deadline=0.3)
    started = time.monotonic()
    with cloudqueue.open_producer("flaky://down", retry=policy) as producer:
        with pytest.raises(cloudqueue.Unavailable):
            producer.send(b"never")
    assert time.monotonic() - started < 2.0
    assert 3 <= len(flaky.plan.calls) < 40


def test_backoff_grows_and_is_jittered() -> None:
    policy = cloudqueue.RetryPolicy(initial=0.1, maximum=0.8, multiplier=2, jitter=0.5, deadline=100)
    delays = [d for _, d in zip(range(6), policy.delays(), strict=False)]
    caps = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap * 0.5 <= delay <= cap


def test_concurrent_sends_are_coalesced(flaky: FlakyProvider) -> None:
    threads, per_thread = 8, 40
    flaky.plan.latency = 0.002
    with cloudqueue.open_producer("flaky://coalesce", max_concurrent_batches=1) as producer:
        def send(worker: int) -> None:
            for index in range(per_thread):
                producer.send(f"{worker}-{index}")

        pool = [threading.Thread(target=send, args=(w,)) for w in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    total = threads * per_thread
    assert sum(flaky.plan.calls) == total
    # With one request at a time, waiting senders ride along in shared requests.
    assert len(flaky.plan.calls) < total
    assert max(flaky.plan.calls) > 1


def test_async_concurrent_sends_are_coalesced(flaky: FlakyProvider) -> None:
    async def main() -> None:
        async with cloudqueue.aio.open_producer(
            "flaky://coalesce-async", max_concurrent_batches=1
        ) as producer:
            await asyncio.gather(*(producer.send(f"m{i}") for i in range(100)))

    asyncio.run(main())
    assert sum(flaky.plan.calls) == 100
    assert len(flaky.plan.calls) < 100


def test_cancelled_sender_does_not_strand_others(flaky: FlakyProvider) -> None:
    flaky.plan.whole_call_failures = 2  # the first sender sleeps in backoff

    async def main() -> list[str]:
        async with cloudqueue.aio.open_producer(
            "flaky://cancel", max_concurrent_batches=1,
            retry=cloudqueue.RetryPolicy(initial=0.2, deadline=10),
        ) as producer:
            first = asyncio.create_task(producer.send(b"first"))
            await asyncio.sleep(0.05)
            others = [asyncio.create_task(producer.send(f"other-{i}")) for i in range(5)]
            await asyncio.sleep(0.05)
            first.cancel()
            return await asyncio.wait_for(asyncio.gather(*others), timeout=10)

    ids = asyncio.run(main())
    assert len(ids) == 5


# -- consumers ----------------------------------------------------------------


def test_in_flight_cap_is_respected(memory_url: str) -> None:
    with cloudqueue.open_producer(memory_url) as producer:
        producer.send_batch([cloudqueue.Message(f"{i}") for i in range(50)])
    with cloudqueue.open_consumer(memory_url, max_in_flight=7) as consumer:
        held = consumer.receive(max_messages=50, wait=0.5)
        assert len(held) == 7
        assert consumer.receive(max_messages=1, wait=0.2) == []
        held[0].ack()
        assert len(consumer.receive(max_messages=5, wait=1.0)) == 1


def test_settlements_are_batched_and_flushed_by_close(memory_url: str) -> None:
    with cloudqueue.open_producer(memory_url) as producer:
        producer.send_batch([cloudqueue.Message(f"{i}") for i in range(30)])
    consumer = cloudqueue.open_consumer(memory_url, settle_delay=60.0)
    messages = []
    while len(messages) < 30:
        messages += consumer.receive(max_messages=30, wait=1.0)
    for message in messages:
        message.ack()
    subscription = consumer.as_(object)
    assert len(subscription.leased) == 30  # type: ignore[attr-defined]  # still waiting to be flushed
    consumer.close()
    assert len(subscription.leased) == 0  # type: ignore[attr-defined]


def test_close_gives_back_prefetched_messages(memory_url: str) -> None:
    total = 5000
    with cloudqueue.open_producer(memory_url) as producer:
        producer.send_batch([cloudqueue.Message(f"{i}") for i in range(total)])
    acked = 0
    with cloudqueue.open_consumer(memory_url) as consumer:
        # Take one at a time for a while: the prefetch grows with the rate.
        started = time.monotonic()
        while time.monotonic() - started < 0.6:
            (message,) = consumer.receive(max_messages=1, wait=1.0)
            message.ack()
            acked += 1
            time.sleep(0.001)
        buffered = len(consumer._core.buffer)
    assert buffered > 1  # pulls fetched more than asked for
    with cloudqueue.open_consumer(memory_url) as consumer:
        rest: list[cloudqueue.ReceivedMessage] = []
        while len(rest) < total - acked and (more := consumer.receive(max_messages=500, wait=0.5)):
            for message in more:
                message.ack()
            rest += more
    assert len(rest) == total - acked
    assert all(message.delivery_attempt in (1, 2) for message in rest)


def test_nack_delay_and_extend_are_validated(memory_url: str) -> None:
    with cloudqueue.open_producer(memory_url) as producer:
        producer.send(b"x")
    with cloudqueue.open_consumer(memory_url) as consumer:
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        for bad in (-1, float("nan"), "soon"):
            with pytest.raises(cloudqueue.InvalidArgument):
                message.nack(delay=bad)  # type: ignore[arg-type]
        for bad in (-1, float("inf"), "long"):
            with pytest.raises(cloudqueue.InvalidArgument, match="extend"):
                message.extend(bad)  # type: ignore[arg-type]
        with pytest.raises(cloudqueue.InvalidArgument):
            consumer.receive(max_messages=0)
        message.ack()


def test_failed_settlements_are_logged_not_lost(
    memory_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    class FailingAcks(SubscriptionDriver):
        def __init__(self, inner: SubscriptionDriver) -> None:
            self.inner = inner

        @property
        def capabilities(self) -> Capabilities:
            return self.inner.capabilities

        def receive_batch(self, max_messages: int, wait: float) -> list[Delivery]:
            return self.inner.receive_batch(max_messages, wait)

        def ack(self, tokens: Sequence[object]) -> BatchErrors:
            return [cloudqueue.NotFound("receipt expired")] * len(tokens)

        def nack(self, entries: Sequence[tuple[object, float]]) -> BatchErrors:
            return self.inner.nack(entries)

    with cloudqueue.open_producer(memory_url) as producer:
        producer.send(b"x")
    provider, url = _registry.resolve(memory_url)
    options = cloudqueue._options.ConsumerOptions(settle_delay=0.01)  # type: ignore[attr-defined]
    consumer = cloudqueue.Consumer(url, FailingAcks(provider.open_subscription(url)), options)
    with caplog.at_level(logging.WARNING, logger="cloudqueue"):
        (message,) = consumer.receive(max_messages=1, wait=1.0)
        message.ack()
        consumer.close()
    assert "1 of 1 ack settlements" in caplog.text
    assert consumer._core.settle_failures == 1


def test_declare_validates_its_arguments() -> None:
    for kwargs in ({"dead_letter_after": 0}, {"dead_letter_after": 2.5}, {"lease": 0},
                   {"lease": -3}, {"lease": "long"}):
        with pytest.raises(cloudqueue.InvalidArgument):
            cloudqueue.declare("memory://declared", **kwargs)  # type: ignore[arg-type]


def test_dead_letter_url_and_capabilities_of_memory() -> None:
    assert cloudqueue.dead_letter_url("memory://orders") == "memory://orders-dlq"
    assert (
        cloudqueue.dead_letter_url("memory://events?subscription=billing")
        == "memory://events-billing-dlq"
    )
    capabilities = cloudqueue.capabilities("memory://orders")
    assert capabilities.implicit_create and capabilities.fan_out and not capabilities.durable
    assert capabilities.describe()["limits"]["max_send_batch"] == 1000  # type: ignore[index]


def test_a_broken_plugin_is_named_and_does_not_break_the_others(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "cloudqueue_broken-1.0.dist-info"  # type: ignore[operator]
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cloudqueue-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[cloudqueue.providers]\nbroken = cloudqueue_broken_missing_module\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _registry.reset()
    try:
        with cloudqueue.open_producer("memory://still-works") as producer:
            producer.send(b"fine")
        with pytest.raises(cloudqueue.NotFound, match="cloudqueue-broken: ModuleNotFoundError"):
            cloudqueue.open_producer("brokenscheme://x")
    finally:
        monkeypatch.undo()
        _registry.reset()


def test_leases_stay_extended_for_many_lease_lengths(memory_url: str) -> None:
    cloudqueue.declare(memory_url, lease=0.6)
    with cloudqueue.open_producer(memory_url) as producer:
        producer.send(b"slow")
    with cloudqueue.open_consumer(memory_url) as holder, \
            cloudqueue.open_consumer(memory_url) as other:
        (message,) = holder.receive(max_messages=1, wait=1.0)
        deadline = time.monotonic() + 4.0  # more than six leases
        while time.monotonic() < deadline:
            assert other.receive(max_messages=1, wait=0.2) == []
        message.ack()


class OrderedFlakyTopic(FlakyTopic):
    """Claims ordering, and records how many sends overlap."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(limits=LIMITS, ordering=True)

    def send_batch(self, messages: Sequence[cloudqueue.Message]) -> list[str | QueueError]:
        with self.plan.lock:
            self.plan.active += 1
            self.plan.most_active = max(self.plan.most_active, self.plan.active)
        try:
            return super().send_batch(messages)
        finally:
            with self.plan.lock:
                self.plan.active -= 1


@pytest.mark.parametrize(("key", "expect_overlap"), [("k", False), (None, True)])
def test_batches_with_ordering_keys_are_never_sent_concurrently(
    flaky: FlakyProvider, key: str | None, expect_overlap: bool
) -> None:
    plan = flaky.plan
    plan.latency = 0.02
    plan.active = plan.most_active = 0
    provider, url = _registry.resolve("flaky://ordered")
    driver = OrderedFlakyTopic(provider.open_topic(url).inner, plan)  # type: ignore[attr-defined]
    producer = cloudqueue.Producer(url, driver, cloudqueue._options.ProducerOptions())  # type: ignore[attr-defined]
    batches = [[cloudqueue.Message(f"{n}-{i}", ordering_key=key) for i in range(25)] for n in range(4)]
    threads = [threading.Thread(target=producer.send_batch, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    producer.close()
    assert sum(plan.calls) == 100
    assert (plan.most_active > 1) is expect_overlap


def test_a_plugin_registered_after_first_use_is_found() -> None:
    cloudqueue.capabilities("memory://warm-up")  # the registry has been built
    provider = FlakyProvider()
    with registered(provider, "late-flaky"):
        with cloudqueue.open_producer("flaky://late") as producer:
            producer.send(b"found")
        assert provider.plan.calls == [1]
    with pytest.raises(cloudqueue.NotFound):
        cloudqueue.open_producer("flaky://gone")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_released_deliveries_do_not_count_as_attempts(
    kind: str, memory_url: str, tmp_path: pytest.TempPathFactory
) -> None:
    url = memory_url if kind == "memory" else f"sqlite:///{tmp_path}/r.db?queue=q"
    cloudqueue.declare(url, dead_letter_after=1)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch([cloudqueue.Message(f"{i}") for i in range(3)])
    provider, parsed = _registry.resolve(url)
    driver = provider.open_subscription(parsed)
    try:
        taken = driver.receive_batch(3, 1.0)
        assert len(taken) == 3
        driver.release([delivery.token for delivery in taken])
        again = driver.receive_batch(3, 1.0)
        # Still first deliveries, and not dead-lettered despite dead_letter_after=1.
        assert sorted(d.body for d in again) == [b"0", b"1", b"2"]
        assert {d.delivery_attempt for d in again} == {1}
        driver.ack([d.token for d in again])
    finally:
        driver.close()
