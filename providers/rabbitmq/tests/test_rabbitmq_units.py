"""The driver's own rules, through the real broker where the broker is involved: URL forms
and their errors, the content-type property, broker headers kept out of attributes,
foreign messages, the error table, redeclaring with other settings, and secrets."""

from __future__ import annotations

import asyncio

import aio_pika
import cloudqueue
import pika
import pytest
from cloudqueue.errors import ErrorCode
from cloudqueue.testing.contract import collect
from cloudqueue.testing.secrets import Exposure, log_everything, new_secret

from cloudqueue_rabbitmq.testing import RabbitMqServer


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("", "exactly one of ?queue=<name> or ?topic=<exchange>"),
        ("?queue=a&topic=b", "exactly one of"),
        ("?queue=a&subscription=s", "subscription= goes with topic="),
        ("?queue=" + "q" * 256, "256 bytes; RabbitMQ names hold at most 255"),
        ("?queue=amq.x", "names starting 'amq.' are reserved"),
        ("?queue=a&lease=0", "0 < lease <= 1800"),
        ("?queue=a&lease=4000", "0 < lease <= 1800"),
    ],
)
def test_bad_urls_are_refused_naming_the_rule(query: str, complaint: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        cloudqueue.open_producer("amqp://u:p@127.0.0.1:1/" + query)
    assert complaint in str(info.value)


def test_a_topic_consumer_needs_a_subscription(rabbitmq_url: str, queue_name: str) -> None:
    cloudqueue.declare(f"{rabbitmq_url}?topic={queue_name}")
    try:
        with pytest.raises(cloudqueue.InvalidArgument, match=r"needs \?subscription=<name>"):
            cloudqueue.open_consumer(f"{rabbitmq_url}?topic={queue_name}")
    finally:
        cloudqueue.delete(f"{rabbitmq_url}?topic={queue_name}")


def test_dead_letter_url_names_the_dead_letter_queue(rabbitmq_url: str) -> None:
    url = cloudqueue.dead_letter_url(f"{rabbitmq_url}?topic=orders&subscription=billing&lease=5")
    assert url.endswith("?queue=orders.billing.dead-letter&lease=5") or (
        "queue=orders.billing.dead-letter" in url and "topic=" not in url
    )


def test_content_type_travels_in_the_native_property(rabbitmq_server: RabbitMqServer,
                                                      rabbitmq_url: str, queue_name: str) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}"
    cloudqueue.declare(url)
    try:
        with cloudqueue.open_producer(url) as producer:
            producer.send(b"{}", attributes={"content-type": "application/json", "k": "v"})

        async def read_natively() -> aio_pika.abc.AbstractIncomingMessage:
            connection = await aio_pika.connect(
                host=rabbitmq_server.host, port=rabbitmq_server.port,
                login=rabbitmq_server.user, password=rabbitmq_server.password,
            )
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(queue_name)
                message = await queue.get(timeout=10)
                await message.ack()
                return message

        native = asyncio.run(read_natively())
        assert native.content_type == "application/json"
        user_headers = {k: v for k, v in (native.headers or {}).items() if not k.startswith("x-")}
        assert user_headers == {"k": "v"}
        assert native.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert native.message_id
    finally:
        cloudqueue.delete(url)


def test_foreign_messages_read_as_sent_without_broker_headers(
    rabbitmq_server: RabbitMqServer, rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}&lease=5"
    cloudqueue.declare(url)

    def publish_natively() -> None:
        # pika, not aio-pika: aiormq gives every message an id; pika sends none unless asked.
        credentials = pika.PlainCredentials(rabbitmq_server.user, rabbitmq_server.password)
        parameters = pika.ConnectionParameters(
            rabbitmq_server.host, rabbitmq_server.port, credentials=credentials
        )
        with pika.BlockingConnection(parameters) as connection:
            # A typed header, a content type, a broker-style x- header.
            properties = pika.BasicProperties(
                headers={"n": 7, "x-custom": "hidden"}, content_type="text/plain"
            )
            connection.channel().basic_publish("", queue_name, b"hello", properties)

    try:
        publish_natively()
        with cloudqueue.open_consumer(url) as consumer:
            (message,) = collect(consumer, 1, timeout=30, ack=False)
            assert message.body == b"hello"
            assert message.attributes == {"n": "7", "content-type": "text/plain"}
            assert message.content_type == "text/plain"
            assert message.id.startswith("sha256:")
            assert message.delivery_attempt == 1
            first_id = message.id
            message.nack()
            (again,) = collect(consumer, 1, timeout=30)
            assert again.id == first_id  # stable across redeliveries
            assert again.delivery_attempt == 2
            assert "x-delivery-count" not in again.attributes
    finally:
        cloudqueue.delete(url)


def test_user_attributes_may_not_take_broker_or_cloudqueue_prefixes(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}"
    cloudqueue.declare(url)
    try:
        with cloudqueue.open_producer(url) as producer:
            for name in ("x-delivery-count", "cloudqueue.marker"):
                with pytest.raises(cloudqueue.InvalidArgument, match="reserved"):
                    producer.send(b"x", attributes={name: "1"})
    finally:
        cloudqueue.delete(url)


def test_redeclaring_with_another_delivery_limit_says_to_delete_first(
    rabbitmq_url: str, queue_name: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}"
    cloudqueue.declare(url, dead_letter_after=3)
    try:
        cloudqueue.declare(url, dead_letter_after=3)  # the same settings: fine
        with pytest.raises(cloudqueue.FailedPrecondition, match="delete it and declare it again"):
            cloudqueue.declare(url, dead_letter_after=4)
    finally:
        cloudqueue.delete(url)


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"ordered": True}, "in order"),
        ({"deduplicated": True}, "deduplication"),
        ({"dead_letter_after": 1001}, "1..1000"),
    ],
)
def test_unsupported_declarations_are_refused_before_anything_changes(
    rabbitmq_url: str, queue_name: str, settings: dict[str, object], complaint: str
) -> None:
    url = f"{rabbitmq_url}?queue={queue_name}"
    with pytest.raises((cloudqueue.Unsupported, cloudqueue.InvalidArgument), match=complaint):
        cloudqueue.declare(url, **settings)  # type: ignore[arg-type]
    with pytest.raises(cloudqueue.NotFound):  # nothing was created
        cloudqueue.purge(url)


def test_wrong_password_is_permission_denied_and_never_shown(
    rabbitmq_server: RabbitMqServer, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    log_everything(caplog, ("aio_pika", "aiormq", "cloudqueue", "cloudqueue_rabbitmq"))
    secret = new_secret()
    server = rabbitmq_server
    url = f"amqp://{server.user}:{secret}@{server.host}:{server.port}/?queue={queue_name}"
    exposure = Exposure(secret)
    with pytest.raises(cloudqueue.QueueError) as info:
        cloudqueue.declare(url)
    assert info.value.code is ErrorCode.PERMISSION_DENIED
    assert info.value.retryable is False
    exposure.error(info.value)
    exposure.failed_round_trip(url, retry=cloudqueue.RetryPolicy(deadline=1.0))
    exposure.assert_clean(caplog=caplog)
