"""The sns:// provider beyond the contract suite: URL and naming rules, provisioning
(queue policy, declaring again, deleting), and messages published by plain boto3 to
subscriptions with and without raw delivery. Against the session's LocalStack."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import cloudqueue
import pytest
from cloudqueue.testing.contract import collect, unique_name
from conftest_driver import aws_environment, endpoint_url

__all__ = ["aws_environment", "endpoint_url"]


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1")


@pytest.fixture
def sns(endpoint_url: str) -> Any:
    return _client("sns", endpoint_url)


@pytest.fixture
def sqs(endpoint_url: str) -> Any:
    return _client("sqs", endpoint_url)


class Urls:
    def __init__(self, endpoint_url: str, topic: str) -> None:
        self.endpoint_url = endpoint_url
        self.topic = topic

    def __call__(self, subscription: str | None = None, topic: str | None = None) -> str:
        params = {"region": "us-east-1", "endpoint_url": self.endpoint_url}
        if subscription is not None:
            params["subscription"] = subscription
        return f"sns://{topic or self.topic}?{urlencode(params)}"


@pytest.fixture(params=["standard", "fifo"])
def urls(request: pytest.FixtureRequest, endpoint_url: str) -> Iterator[Urls]:
    suffix = ".fifo" if request.param == "fifo" else ""
    made = Urls(endpoint_url, unique_name("t") + suffix)
    yield made
    with contextlib.suppress(cloudqueue.NotFound):
        cloudqueue.delete(made())


@pytest.fixture
def standard(endpoint_url: str) -> Iterator[Urls]:
    made = Urls(endpoint_url, unique_name("t"))
    yield made
    with contextlib.suppress(cloudqueue.NotFound):
        cloudqueue.delete(made())


def _queue_url(sqs: Any, name: str) -> str:
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def _queue_exists(sqs: Any, name: str) -> bool:
    try:
        _queue_url(sqs, name)
    except sqs.exceptions.QueueDoesNotExist:
        return False
    return True


def _topic_arn(sns: Any, name: str) -> str:
    return str(sns.create_topic(
        Name=name, Attributes={"FifoTopic": "true"} if name.endswith(".fifo") else {}
    )["TopicArn"])


def _subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    return list(sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"])


# -- URLs and naming ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "subscription", "expected"),
    [
        ("bad name", None, "1-256 letters"),
        ("x" * 257, None, "1-256 letters"),
        ("dots.are.not.fifo", "s", "1-256 letters"),
        ("orders", "bad.sub", "letters, digits"),
        ("o" * 70, "s" * 10, "81 characters; SQS allows at most 80"),
    ],
)
def test_bad_names_are_refused_naming_the_rule(
    endpoint_url: str, topic: str, subscription: str | None, expected: str
) -> None:
    url = Urls(endpoint_url, topic)(subscription)
    with pytest.raises(cloudqueue.InvalidArgument, match=expected):
        cloudqueue.declare(url)


def test_a_queue_name_of_exactly_80_characters_is_accepted(endpoint_url: str, sqs: Any) -> None:
    topic = unique_name("t")
    subscription = "s" * (80 - len(topic) - 1)
    url = Urls(endpoint_url, topic)
    cloudqueue.declare(url(subscription))
    try:
        assert _queue_exists(sqs, f"{topic}-{subscription}")
    finally:
        cloudqueue.delete(url())


@pytest.mark.parametrize("account", ["123", "12345678901a", ""])
def test_an_account_that_is_not_12_digits_is_refused(endpoint_url: str, account: str) -> None:
    url = Urls(endpoint_url, "orders")() + "&" + urlencode({"account": account})
    with pytest.raises(cloudqueue.InvalidArgument, match="12 digits"):
        cloudqueue.open_producer(url).send(b"x")


def test_the_account_parameter_names_the_topic_arn(endpoint_url: str, sns: Any) -> None:
    caller = boto3.client("sts", endpoint_url=endpoint_url, region_name="us-east-1")
    account = caller.get_caller_identity()["Account"]
    topic = unique_name("t")
    url = Urls(endpoint_url, topic)
    cloudqueue.declare(url())
    try:
        with cloudqueue.open_producer(f"{url()}&account={account}") as producer:
            producer.send(b"to the named account")
        other = "999999999999" if account != "999999999999" else "111111111111"
        with pytest.raises(cloudqueue.NotFound), cloudqueue.open_producer(
            f"{url()}&account={other}"
        ) as producer:
            producer.send(b"no topic there")
    finally:
        cloudqueue.delete(url())


def test_consumers_purge_and_dead_letters_need_a_subscription(standard: Urls) -> None:
    cloudqueue.declare(standard())
    for operation in (
        lambda: cloudqueue.open_consumer(standard()),
        lambda: cloudqueue.purge(standard()),
        lambda: cloudqueue.dead_letter_url(standard()),
    ):
        with pytest.raises(cloudqueue.InvalidArgument, match=r"subscription=<name>"):
            operation()
    with pytest.raises(cloudqueue.InvalidArgument, match="belong to a subscription"):
        cloudqueue.declare(standard(), dead_letter_after=3)


def test_ordered_or_deduplicated_on_a_standard_topic_names_the_fifo_topic(standard: Urls) -> None:
    for settings in ({"ordered": True}, {"deduplicated": True}):
        for url in (standard(), standard("s")):
            with pytest.raises(cloudqueue.Unsupported, match=rf"'{standard.topic}\.fifo'"):
                cloudqueue.declare(url, **settings)  # type: ignore[arg-type]


# -- provisioning ---------------------------------------------------------------------


def test_the_queue_is_named_from_topic_and_subscription_and_its_policy_names_only_the_topic(
    urls: Urls, sqs: Any, sns: Any
) -> None:
    cloudqueue.declare(urls("billing"), dead_letter_after=3)
    fifo = urls.topic.endswith(".fifo")
    base = urls.topic.removesuffix(".fifo")
    name = f"{base}-billing" + (".fifo" if fifo else "")
    attributes = sqs.get_queue_attributes(QueueUrl=_queue_url(sqs, name),
                                          AttributeNames=["All"])["Attributes"]
    topic_arn = _topic_arn(sns, urls.topic)
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Resource"] == attributes["QueueArn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topic_arn}}
    assert attributes.get("FifoQueue", "false") == ("true" if fifo else "false")
    twin = f"{base}-billing-dlq" + (".fifo" if fifo else "")
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(":" + twin)
    (subscription,) = _subscriptions(sns, topic_arn)
    assert subscription["Endpoint"] == attributes["QueueArn"]
    raw = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
    assert raw["Attributes"]["RawMessageDelivery"] == "true"


def test_declaring_again_updates_in_place_and_keeps_a_users_policy_statement(
    standard: Urls, sqs: Any, sns: Any
) -> None:
    cloudqueue.declare(standard("s"), lease=5)
    queue_url = _queue_url(sqs, f"{standard.topic}-s")
    policy = json.loads(sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    users = {"Sid": "mine", "Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": "sqs:ReceiveMessage", "Resource": "*"}
    policy["Statement"].append(users)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})

    cloudqueue.declare(standard("s"), lease=9, filter=cloudqueue.filters.where("k").equals("v"))
    cloudqueue.declare(standard("s"), lease=7)

    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "7"
    statements = json.loads(attributes["Policy"])["Statement"]
    assert users in statements and len(statements) == 2
    (subscription,) = _subscriptions(sns, _topic_arn(sns, standard.topic))
    current = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
    assert not current["Attributes"].get("FilterPolicy")  # filter=None removed it


def test_deleting_a_subscription_keeps_its_dead_letters_and_the_topic(
    standard: Urls, sqs: Any, sns: Any
) -> None:
    cloudqueue.declare(standard("a"), dead_letter_after=2)
    cloudqueue.declare(standard("b"))
    cloudqueue.delete(standard("a"))
    assert not _queue_exists(sqs, f"{standard.topic}-a")
    assert _queue_exists(sqs, f"{standard.topic}-a-dlq")
    (left,) = _subscriptions(sns, _topic_arn(sns, standard.topic))
    assert left["Endpoint"].endswith(f":{standard.topic}-b")
    with pytest.raises(cloudqueue.NotFound):
        cloudqueue.delete(standard("a"))
    sqs.delete_queue(QueueUrl=_queue_url(sqs, f"{standard.topic}-a-dlq"))


def test_deleting_a_topic_deletes_its_queues_and_twins_but_not_a_users_queue(
    standard: Urls, sqs: Any, sns: Any
) -> None:
    cloudqueue.declare(standard("a"), dead_letter_after=2)
    cloudqueue.declare(standard("b"))
    own = sqs.create_queue(QueueName=unique_name("own"))["QueueUrl"]
    own_arn = sqs.get_queue_attributes(QueueUrl=own, AttributeNames=["QueueArn"])
    topic_arn = _topic_arn(sns, standard.topic)
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs",
                  Endpoint=own_arn["Attributes"]["QueueArn"])

    cloudqueue.delete(standard())

    for name in ("a", "a-dlq", "b"):
        assert not _queue_exists(sqs, f"{standard.topic}-{name}")
    assert _queue_exists(sqs, own.rsplit("/", 1)[-1])
    assert topic_arn not in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    with pytest.raises(cloudqueue.NotFound):
        cloudqueue.delete(standard())
    sqs.delete_queue(QueueUrl=own)


def test_purge_empties_one_subscription_only(standard: Urls) -> None:
    cloudqueue.declare(standard("a"))
    cloudqueue.declare(standard("b"))
    with cloudqueue.open_producer(standard()) as producer:
        producer.send(b"one")
    with cloudqueue.open_consumer(standard("b")) as consumer:
        # Received first: the publish has reached both queues once it is in b.
        (kept,) = collect(consumer, 1, timeout=30, ack=False)
        kept.nack()
    cloudqueue.purge(standard("a"))
    with cloudqueue.open_consumer(standard("a")) as consumer:
        assert consumer.receive(max_messages=10, wait=1.0) == []
    with cloudqueue.open_consumer(standard("b")) as consumer:
        assert [m.body for m in collect(consumer, 1, timeout=30)] == [b"one"]


def test_the_dead_letter_url_is_the_sqs_twin_with_the_same_parameters(urls: Urls) -> None:
    cloudqueue.declare(urls("s"), dead_letter_after=2)
    suffix = ".fifo" if urls.topic.endswith(".fifo") else ""
    twin = f"{urls.topic.removesuffix('.fifo')}-s-dlq{suffix}"
    expected = f"sqs://{twin}?" + urlencode(
        {"region": "us-east-1", "endpoint_url": urls.endpoint_url}, safe="/:"
    )
    assert cloudqueue.dead_letter_url(urls("s")) == expected


# -- messages from other publishers -----------------------------------------------------


_ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "order"},
    "count": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
}
_PORTABLE = {"kind": "order", "count": "42", "blob": base64.b64encode(b"\x00\x01\xfe").decode()}


def test_a_boto3_publish_to_a_raw_subscription_arrives_with_the_sqs_id(
    standard: Urls, sns: Any
) -> None:
    cloudqueue.declare(standard("raw"))
    sns.publish(TopicArn=_topic_arn(sns, standard.topic), Message="héllo {not json",
                MessageAttributes=_ATTRIBUTES)
    with cloudqueue.open_consumer(standard("raw")) as consumer:
        (message,) = collect(consumer, 1, timeout=30)
    assert message.body == "héllo {not json".encode()
    assert message.attributes == _PORTABLE
    native = message.as_(dict)
    assert native is not None and message.id == native["MessageId"]  # the SQS message id


def test_a_boto3_publish_to_a_subscription_without_raw_delivery_is_unwrapped(
    standard: Urls, sns: Any, sqs: Any
) -> None:
    # A subscription made by hand, without raw delivery, on the queue the naming rule gives.
    cloudqueue.declare(standard())
    topic_arn = _topic_arn(sns, standard.topic)
    queue_url = sqs.create_queue(QueueName=f"{standard.topic}-wrapped")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    body = json.dumps({"Type": "Notification", "note": "an app body that is JSON"})
    published = sns.publish(TopicArn=topic_arn, Message=body, MessageAttributes=_ATTRIBUTES)
    with cloudqueue.open_producer(standard()) as producer:
        ours = producer.send(b"\x00binary", attributes={"empty": ""})

    with cloudqueue.open_consumer(standard("wrapped")) as consumer:
        got = {m.body: m for m in collect(consumer, 2, timeout=30)}
    foreign = got[body.encode()]
    assert foreign.attributes == _PORTABLE
    assert foreign.id == published["MessageId"]  # the SNS message id
    mine = got[b"\x00binary"]
    assert mine.attributes == {"empty": ""}
    assert mine.id == ours
    # An sqs:// consumer of the same queue sees the envelope itself.
    sqs.send_message(QueueUrl=queue_url, MessageBody="plain")
    with cloudqueue.open_consumer(
        f"sqs://{standard.topic}-wrapped?" + urlencode(
            {"region": "us-east-1", "endpoint_url": standard.endpoint_url})
    ) as consumer:
        (plain,) = collect(consumer, 1, timeout=30)
    assert plain.body == b"plain"
    sqs.delete_queue(QueueUrl=queue_url)


# -- limits and telemetry -------------------------------------------------------------------


def test_seven_user_attributes_fit_and_an_eighth_is_refused(standard: Urls) -> None:
    cloudqueue.declare(standard("s"))
    seven = {f"a{i}": str(i) for i in range(7)}
    with cloudqueue.open_producer(standard()) as producer:
        sent = producer.send(b"\xff", attributes=seven)
        with pytest.raises(cloudqueue.InvalidArgument, match="7"):
            producer.send(b"x", attributes={**seven, "a7": "7"})
    with cloudqueue.open_consumer(standard("s")) as consumer:
        (message,) = collect(consumer, 1, timeout=30)
    assert (message.id, message.body, message.attributes) == (sent, b"\xff", seven)


def test_delay_is_unsupported_on_topics(standard: Urls) -> None:
    cloudqueue.declare(standard("s"))
    with cloudqueue.open_producer(standard()) as producer, pytest.raises(cloudqueue.Unsupported):
        producer.send(b"later", delay=5)


def test_the_topic_driver_describes_sns_to_telemetry(standard: Urls, sns: Any) -> None:
    from cloudqueue.driver import Url

    from cloudqueue_sqs.sns import cloudqueue_providers

    cloudqueue.declare(standard())
    (provider,) = cloudqueue_providers()
    params = {"region": "us-east-1", "endpoint_url": standard.endpoint_url}
    driver = provider.open_topic(Url(scheme="sns", host=standard.topic, path="", params=params))
    attributes = driver.telemetry_attributes()
    assert attributes["messaging.system"] == "aws.sns"
    assert attributes["messaging.destination.name"] == standard.topic
    assert attributes["aws.sns.topic.arn"] == _topic_arn(sns, standard.topic)
    assert attributes["server.address"] == "127.0.0.1"
