"""Service Bus driver behaviour beyond the contract suite: secrets, URLs, lock loss,
and recovery after every connection to the broker is cut."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import cloudqueue
import pytest
from cloudqueue.testing.contract import collect, unique_name
from cloudqueue.testing.faultproxy import FaultProxy

from cloudqueue_azure_servicebus import provider as servicebus_provider
from cloudqueue_azure_servicebus._names import CA_FILE_ENV, credentials_for, target_of
from cloudqueue_azure_servicebus.testing import ServiceBusBroker

SECRET_KEY = "k3y-that-must-never-show-up="


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker() as running:
        os.environ[CA_FILE_ENV] = running.certificate_path
        yield running
        os.environ.pop(CA_FILE_ENV, None)


def url_for(connection_string: str, name: str, **params: str) -> str:
    extra = "".join(f"&{key}={value}" for key, value in params.items())
    return f"azuresb://local/{name}?connection_string={quote(connection_string, safe='')}{extra}"


def secret_string(port: int) -> str:
    return (f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={SECRET_KEY};UseDevelopmentEmulator=true")


def test_urls_name_namespace_entity_and_subscription() -> None:
    from cloudqueue._url import parse_url

    target = target_of(parse_url("azuresb://contoso/orders?subscription=billing"))
    assert (target.namespace, target.entity, target.subscription, target.dead_letter) == (
        "contoso", "orders", "billing", False)
    assert target_of(parse_url("azuresb://contoso/orders?subqueue=deadletter")).dead_letter
    with pytest.raises(cloudqueue.InvalidArgument, match="subqueue"):
        target_of(parse_url("azuresb://contoso/orders?subqueue=transfer"))
    with pytest.raises(cloudqueue.InvalidArgument, match="namespace"):
        target_of(parse_url("azuresb://contoso/a/b"))


def test_fully_qualified_namespace_without_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudqueue._url import parse_url

    monkeypatch.delenv("AZURE_SERVICEBUS_CONNECTION_STRING", raising=False)
    assert credentials_for(parse_url("azuresb://contoso/q")).fully_qualified_namespace == (
        "contoso.servicebus.windows.net")
    assert credentials_for(parse_url("azuresb://sb.example.net/q")).fully_qualified_namespace == (
        "sb.example.net")


def test_connection_string_and_key_never_show(broker: ServiceBusBroker,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connection_string = secret_string(broker.port)
    url = url_for(connection_string, unique_name("missing"))
    with pytest.raises(cloudqueue.NotFound) as info, cloudqueue.open_producer(url) as producer:
        assert SECRET_KEY not in repr(producer)
        producer.send(b"x")
    shown = [str(info.value), repr(info.value), str(cloudqueue.dead_letter_url(url) and url)]
    shown += [record.getMessage() for record in caplog.records]
    from cloudqueue._url import parse_url

    parsed = parse_url(url, secret_params=servicebus_provider.ServiceBusProvider.secret_parameters)
    shown += [str(parsed), repr(parsed), repr(credentials_for(parsed))]
    assert all(SECRET_KEY not in text and connection_string not in text for text in shown)


def test_lock_loss_leads_to_redelivery_not_loss(broker: ServiceBusBroker) -> None:
    url = url_for(broker.connection_string, unique_name("lock"))
    cloudqueue.declare(url, lease=1.0)
    with cloudqueue.open_producer(url) as producer:
        sent = producer.send(b"slow work")
    with cloudqueue.open_consumer(url, max_lease_extension=0) as consumer:
        (first,) = collect(consumer, 1, timeout=30, ack=False)
        time.sleep(2.0)  # the handler outlives its 1 s lock
        first.ack()  # too late: the settlement fails in the background
        (again,) = collect(consumer, 1, timeout=15)
    assert (first.id, again.id) == (sent, sent)
    assert again.delivery_attempt == 2


def test_cut_connections_lose_no_sent_message(broker: ServiceBusBroker) -> None:
    with FaultProxy("127.0.0.1", broker.port) as proxy:
        connection_string = broker.connection_string.replace(f":{broker.port};", f":{proxy.port};")
        url = url_for(connection_string, unique_name("cut"))
        cloudqueue.declare(url_for(broker.connection_string, url.split("/")[3].split("?")[0]), lease=5.0)
        sent: set[str] = set()
        received: set[str] = set()
        stop = threading.Event()

        def produce() -> None:
            with cloudqueue.open_producer(url) as producer:
                index = 0
                while not stop.is_set():
                    try:
                        producer.send(f"m{index}")
                        sent.add(f"m{index}")
                    except cloudqueue.QueueError:
                        pass  # not reported as sent: may or may not arrive
                    index += 1
                    time.sleep(0.01)

        with cloudqueue.open_consumer(url) as consumer:
            producing = threading.Thread(target=produce)
            producing.start()
            deadline = time.monotonic() + 60
            cut_done = False
            while time.monotonic() < deadline:
                try:
                    for message in consumer.receive(max_messages=50, wait=0.5):
                        received.add(message.text())
                        message.ack()
                except cloudqueue.QueueError:
                    pass
                if not cut_done and len(received) >= 20:
                    proxy.cut(3.0)
                    cut_done = True
                    cut_at = time.monotonic()
                if cut_done and time.monotonic() - cut_at > 8 and not stop.is_set():
                    stop.set()
                    producing.join()
                if stop.is_set() and sent <= received:
                    break
            stop.set()
            producing.join()
    assert cut_done
    assert sent - received == set()
    assert len(sent) > 20


def test_close_ends_a_receive_waiting_in_another_thread_within_one_slice(broker: ServiceBusBroker) -> None:
    url = url_for(broker.connection_string, unique_name("wake"))
    cloudqueue.declare(url)
    consumer = cloudqueue.open_consumer(url)
    returned: list[object] = []
    waiter = threading.Thread(target=lambda: returned.append(consumer.receive(max_messages=1, wait=15.0)))
    waiter.start()
    time.sleep(1.0)  # the receive is waiting, slice after slice
    started = time.monotonic()
    consumer.close()
    waiter.join(timeout=10)
    assert returned == [[]]
    assert time.monotonic() - started < 3.0  # was the rest of the 15 s wait
