"""Push subscriptions: the server POSTs each message to a loopback HTTP endpoint.

Driven by the official client (create the push subscription, publish) with a small HTTP server
in the test as the endpoint, and end to end through the library's own push adapter
(:func:`cloudqueue.serverless.pubsub_push_wsgi`).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from cloudqueue.serverless import pubsub_push_wsgi
from conftest import PULL_WAIT_SECONDS, SubscriptionFactory, publish_all, pull_until
from google.api_core import exceptions
from google.cloud import pubsub_v1

from cloudqueue_pubsub.testing import PubSubServer
from cloudqueue_pubsub.testing._resources import exponential_backoff


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubServer]:
    # A short push backoff, so that redeliveries after a failed push come quickly.
    with PubSubServer(pull_wait_seconds=PULL_WAIT_SECONDS, push_backoff=(0.01, 0.05)) as running:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", running.address)
        yield running


@dataclass
class Pushed:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message_id(self) -> str:
        return str(self.json["message"]["messageId"])

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.json["message"]["data"])


@dataclass
class Endpoint:
    """An HTTP server recording every POST and answering with ``respond(request)``."""

    url: str
    respond: Callable[[Pushed], int] = lambda request: 204
    received: list[Pushed] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    most_in_flight_per_key: int = 0

    def wait_for(self, predicate: Callable[[list[Pushed]], bool], timeout: float = 10) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.received), timeout):
                raise AssertionError(f"endpoint never saw what was expected: {self.received}")


@contextlib.contextmanager
def serving(httpd: socketserver.TCPServer) -> Iterator[int]:
    """Serve ``httpd`` on a background thread for the block; its port. Shut down after."""
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = Pushed(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            key = _ordering_key(request)
            with state.changed:
                state.in_flight[key] += 1
                state.most_in_flight_per_key = max(state.most_in_flight_per_key, state.in_flight[key])
            status = state.respond(request)
            with state.changed:
                state.in_flight[key] -= 1
                state.received.append(request)
                state.changed.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    with serving(httpd) as port:
        state.url = f"http://127.0.0.1:{port}/push?token=abc"
        yield state


def _ordering_key(request: Pushed) -> str:
    try:
        return str(request.json["message"].get("orderingKey", ""))
    except (ValueError, KeyError):
        return ""


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    give_up_at = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up_at:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def push_subscription(make_subscription: SubscriptionFactory, url: str, **fields: Any) -> str:
    return make_subscription(push_config={"push_endpoint": url}, **fields)


# --- the push request ------------------------------------------------------------------------


def test_a_published_message_is_pushed_wrapped_and_a_204_acks_it(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    subscription = push_subscription(make_subscription, endpoint.url)
    [message_id] = publish_all(publisher, topic, b"\x00hello", kind="order")

    endpoint.wait_for(lambda received: len(received) == 1)
    request = endpoint.received[0]
    assert request.path == "/push?token=abc"
    assert request.headers["content-type"] == "application/json"
    document = request.json
    assert document["subscription"] == subscription
    assert "deliveryAttempt" not in document  # only with a dead-letter policy
    message = document["message"]
    assert base64.b64decode(message["data"]) == b"\x00hello"
    assert message["attributes"] == {"kind": "order"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"]
    assert message["publishTime"].endswith("Z")
    assert "orderingKey" not in message
    wait_until(lambda: server.broker.backlog(subscription) == 0)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_documented_success_statuses_ack(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
    status: int,
) -> None:
    endpoint.respond = lambda request: status
    subscription = push_subscription(make_subscription, endpoint.url)
    publish_all(publisher, topic, b"one", b"two")
    wait_until(lambda: server.broker.backlog(subscription) == 0)
    assert sorted(request.data for request in endpoint.received) == [b"one", b"two"]


@pytest.mark.parametrize("status", [203, 205, 302, 400, 404, 429, 500, 503])
def test_any_other_status_nacks_and_the_message_is_pushed_again(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
    status: int,
) -> None:
    answers = iter([status, status])
    endpoint.respond = lambda request: next(answers, 204)
    subscription = push_subscription(make_subscription, endpoint.url)
    [message_id] = publish_all(publisher, topic, b"retry me")
    endpoint.wait_for(lambda received: len(received) == 3)
    assert [request.message_id for request in endpoint.received] == [message_id] * 3
    wait_until(lambda: server.broker.backlog(subscription) == 0)


def test_an_unreachable_endpoint_nacks(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    # Port 9 (discard) on loopback: nothing listens, every push fails to connect.
    subscription = push_subscription(make_subscription, "http://127.0.0.1:9/")
    publish_all(publisher, topic, b"queued")
    assert server.broker.backlog(subscription) == 1
    subscriber.modify_push_config(
        request={"subscription": subscription, "push_config": {"push_endpoint": endpoint.url}}
    )
    endpoint.wait_for(lambda received: [r.data for r in received] == [b"queued"])
    wait_until(lambda: server.broker.backlog(subscription) == 0)


def test_ordering_key_and_delivery_attempt_are_in_the_payload(
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
    dead_letter_topic: str,
) -> None:
    answers = iter([500])
    endpoint.respond = lambda request: next(answers, 204)
    push_subscription(
        make_subscription,
        endpoint.url,
        enable_message_ordering=True,
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5},
    )
    ordered_publisher.publish(topic, b"keyed", ordering_key="customer-1").result(timeout=10)
    endpoint.wait_for(lambda received: len(received) == 2)
    assert [request.json["deliveryAttempt"] for request in endpoint.received] == [1, 2]
    assert {request.json["message"]["orderingKey"] for request in endpoint.received} == {
        "customer-1"
    }


def test_no_wrapper_sends_the_raw_data_and_metadata_headers(
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    subscription = make_subscription(
        push_config={"push_endpoint": endpoint.url, "no_wrapper": {"write_metadata": True}}
    )
    [message_id] = publish_all(publisher, topic, b"raw bytes", colour="blue")
    endpoint.wait_for(lambda received: len(received) == 1)
    request = endpoint.received[0]
    assert request.body == b"raw bytes"
    assert request.headers["x-goog-pubsub-subscription-name"] == subscription
    assert request.headers["x-goog-pubsub-message-id"] == message_id
    assert request.headers["x-goog-pubsub-publish-time"].endswith("Z")
    assert request.headers["colour"] == "blue"


def test_no_wrapper_without_metadata_sends_only_the_data(
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    make_subscription(push_config={"push_endpoint": endpoint.url, "no_wrapper": {}})
    publish_all(publisher, topic, b"only data", colour="blue")
    endpoint.wait_for(lambda received: len(received) == 1)
    request = endpoint.received[0]
    assert request.body == b"only data"
    assert "colour" not in request.headers
    assert not any(name.startswith("x-goog-pubsub-") for name in request.headers)


# --- delivery semantics ----------------------------------------------------------------------


def test_failing_pushes_are_dead_lettered_after_max_delivery_attempts(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
    dead_letter_topic: str,
) -> None:
    dead_letters = make_subscription(dead_letter_topic)
    endpoint.respond = lambda request: 500
    subscription = push_subscription(
        make_subscription,
        endpoint.url,
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5},
    )
    publish_all(publisher, topic, b"poison")

    [forwarded] = pull_until(subscriber, dead_letters, 1)
    assert forwarded.message.data == b"poison"
    assert forwarded.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert [request.json["deliveryAttempt"] for request in endpoint.received] == [1, 2, 3, 4, 5]
    assert server.broker.backlog(subscription) == 0


def test_retry_policy_overrides_the_push_backoff(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    answers = iter([500])
    endpoint.respond = lambda request: next(answers, 204)
    subscription = push_subscription(
        make_subscription,
        endpoint.url,
        retry_policy={"minimum_backoff": {"seconds": 600}, "maximum_backoff": {"seconds": 600}},
    )
    publish_all(publisher, topic, b"held back")
    endpoint.wait_for(lambda received: len(received) == 1)
    # The message waits out a 600 s retry backoff: still backlog, no second push yet.
    assert server.broker.backlog(subscription) == 1
    publish_all(publisher, topic, b"next")
    endpoint.wait_for(lambda received: [r.data for r in received] == [b"held back", b"next"])


def test_push_backoff_doubles_between_documented_bounds() -> None:
    # The delays the server waits between failed pushes of one message, without a retry
    # policy, with the documented bounds of 100 ms and 60 s.
    delays = [exponential_backoff(0.1, 60.0, attempt) for attempt in range(1, 12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0
    with pytest.raises(ValueError, match="push_backoff"):
        PubSubServer(push_backoff=(2.0, 1.0))


def test_one_push_at_a_time_per_ordering_key_in_publish_order(
    server: PubSubServer,
    ordered_publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    failed_once: set[bytes] = set()

    def respond(request: Pushed) -> int:
        time.sleep(0.005)  # widen the window in which a second push of the key could overlap
        if request.data == b"a2" and request.data not in failed_once:
            failed_once.add(request.data)
            return 500
        return 204

    endpoint.respond = respond
    subscription = push_subscription(make_subscription, endpoint.url, enable_message_ordering=True)
    futures = [
        ordered_publisher.publish(topic, f"{key}{n}".encode(), ordering_key=key)
        for n in range(1, 6)
        for key in ("a", "b")
    ]
    for future in futures:
        future.result(timeout=10)
    endpoint.wait_for(lambda received: len(received) == 11)
    wait_until(lambda: server.broker.backlog(subscription) == 0)
    per_key = {
        key: [r.data for r in endpoint.received if _ordering_key(r) == key] for key in ("a", "b")
    }
    assert per_key["a"] == [b"a1", b"a2", b"a2", b"a3", b"a4", b"a5"]
    assert per_key["b"] == [b"b1", b"b2", b"b3", b"b4", b"b5"]
    assert endpoint.most_in_flight_per_key == 1


def test_several_unkeyed_messages_are_pushed_concurrently(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    both_arrived = threading.Barrier(2, timeout=10)

    def respond(request: Pushed) -> int:
        both_arrived.wait()  # returns only when two pushes are in flight at once
        return 204

    endpoint.respond = respond
    subscription = push_subscription(make_subscription, endpoint.url)
    publish_all(publisher, topic, b"x", b"y")
    endpoint.wait_for(lambda received: len(received) == 2)
    wait_until(lambda: server.broker.backlog(subscription) == 0)


# --- switching and refusing ------------------------------------------------------------------


def test_pull_on_a_push_subscription_is_a_failed_precondition(
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    endpoint: Endpoint,
) -> None:
    subscription = push_subscription(make_subscription, endpoint.url)
    with pytest.raises(exceptions.FailedPrecondition, match="push subscriptions"):
        subscriber.pull(subscription=subscription, max_messages=1, return_immediately=True)


def test_modify_push_config_switches_between_push_and_pull(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    endpoint: Endpoint,
) -> None:
    subscription = push_subscription(make_subscription, endpoint.url)
    publish_all(publisher, topic, b"pushed")
    endpoint.wait_for(lambda received: len(received) == 1)
    wait_until(lambda: server.broker.backlog(subscription) == 0)

    subscriber.modify_push_config(request={"subscription": subscription, "push_config": {}})
    assert subscriber.get_subscription(subscription=subscription).push_config.push_endpoint == ""
    publish_all(publisher, topic, b"pulled")
    [received] = pull_until(subscriber, subscription, 1)
    assert received.message.data == b"pulled"
    subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
    publish_all(publisher, topic, b"waits for push")

    subscriber.update_subscription(
        request={
            "subscription": {"name": subscription, "push_config": {"push_endpoint": endpoint.url}},
            "update_mask": {"paths": ["push_config"]},
        }
    )
    endpoint.wait_for(lambda received: [r.data for r in received] == [b"pushed", b"waits for push"])
    wait_until(lambda: server.broker.backlog(subscription) == 0)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/push",
        "http://10.0.0.1/push",
        "http://[2001:db8::1]/push",
        "http://localhost.example.com/push",
        "ftp://127.0.0.1/push",
        "127.0.0.1:8080/push",
        "http://127.0.0.1:99999/push",
    ],
)
def test_endpoints_off_loopback_are_refused_on_every_path(
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    url: str,
) -> None:
    with pytest.raises(exceptions.InvalidArgument, match=r"push_config\.push_endpoint") as created:
        push_subscription(make_subscription, url)
    existing = make_subscription()
    with pytest.raises(exceptions.InvalidArgument) as modified:
        subscriber.modify_push_config(
            request={"subscription": existing, "push_config": {"push_endpoint": url}}
        )
    with pytest.raises(exceptions.InvalidArgument) as updated:
        subscriber.update_subscription(
            request={
                "subscription": {"name": existing, "push_config": {"push_endpoint": url}},
                "update_mask": {"paths": ["push_config"]},
            }
        )
    assert created.value.message == modified.value.message == updated.value.message
    assert subscriber.get_subscription(subscription=existing).push_config.push_endpoint == ""


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:1/"])
def test_loopback_endpoints_are_accepted(make_subscription: SubscriptionFactory, url: str) -> None:
    push_subscription(make_subscription, url)


# --- end to end through the library's push adapter -------------------------------------------


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class AdapterRun:
    url: str
    handled: list[tuple[bytes, int | None]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)


@pytest.fixture
def adapter() -> Iterator[AdapterRun]:
    run = AdapterRun(url="")

    def handler(message: Any) -> None:
        with run.changed:
            run.handled.append((message.body, message.delivery_attempt))
            run.changed.notify_all()
        if message.body.startswith(b"fail"):
            raise RuntimeError("handler refuses this message")

    httpd = make_server(
        "127.0.0.1",
        0,
        pubsub_push_wsgi(handler),
        server_class=_ThreadingWSGIServer,
        handler_class=_Quiet,
    )
    with serving(httpd) as port:
        run.url = f"http://127.0.0.1:{port}/"
        yield run


def test_library_push_adapter_acks_successes_and_dead_letters_failures(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    adapter: AdapterRun,
    dead_letter_topic: str,
) -> None:
    dead_letters = make_subscription(dead_letter_topic)
    subscription = push_subscription(
        make_subscription,
        adapter.url,
        dead_letter_policy={"dead_letter_topic": dead_letter_topic, "max_delivery_attempts": 5},
    )
    publish_all(publisher, topic, b"ok-1", b"fail-1", b"ok-2")

    forwarded = pull_until(subscriber, dead_letters, 1)
    assert [m.message.data for m in forwarded] == [b"fail-1"]
    assert forwarded[0].message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    wait_until(lambda: server.broker.backlog(subscription) == 0)
    with adapter.changed:
        handled = list(adapter.handled)
    # Each success was handled once, on its first attempt; the failure on attempts 1 to 5.
    assert sorted(attempt for body, attempt in handled if body == b"ok-1") == [1]
    assert sorted(attempt for body, attempt in handled if body == b"ok-2") == [1]
    assert [attempt for body, attempt in handled if body == b"fail-1"] == [1, 2, 3, 4, 5]


def test_library_push_adapter_without_dead_letter_policy_retries_until_success(
    server: PubSubServer,
    publisher: pubsub_v1.PublisherClient,
    make_subscription: SubscriptionFactory,
    topic: str,
    adapter: AdapterRun,
) -> None:
    subscription = push_subscription(make_subscription, adapter.url)
    publish_all(publisher, topic, b"fail-forever", b"fine")
    with adapter.changed:
        assert adapter.changed.wait_for(
            lambda: sum(body == b"fail-forever" for body, _ in adapter.handled) >= 3, 10
        )
        assert [attempt for _, attempt in adapter.handled] == [None] * len(adapter.handled)
    assert (b"fine", None) in adapter.handled
    # The success is acknowledged; the failure stays in the subscription, retried.
    wait_until(lambda: server.broker.backlog(subscription) == 1)
