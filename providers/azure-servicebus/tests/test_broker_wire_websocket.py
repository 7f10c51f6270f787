"""AMQP over WebSockets (``TransportType.AmqpOverWebsocket``) on the broker's one port (issue 12).

The SDK's sync transport needs ``websocket-client`` and its async one ``aiohttp``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage, TransportType
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient

from cloudqueue_azure_servicebus.testing import ServiceBusBroker

BIG = b"x" * 200_000  # larger than one 64 KiB WebSocket length field; under the 256 KB entity limit


def ws_options(broker: ServiceBusBroker) -> dict[str, Any]:
    # The SDK drops the Endpoint's port for WebSockets; custom_endpoint_address brings it back.
    return {
        "transport_type": TransportType.AmqpOverWebsocket,
        "custom_endpoint_address": broker.custom_endpoint_address,
    }


@pytest.fixture
def ws_client(broker: ServiceBusBroker) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(broker.connection_string, **ws_options(broker)) as sb:
        yield sb


def test_send_receive_settle_over_websocket(
    ws_client: ServiceBusClient, broker: ServiceBusBroker, make_queue: Any
) -> None:
    queue = make_queue()
    with ws_client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        sender.send_messages(ServiceBusMessage(BIG))
    with ws_client.get_queue_receiver(queue) as receiver:
        got = _receive(receiver, 3)
        assert sorted(b"".join(m.body) for m in got) == sorted([b"a", b"b", BIG])
        by_body = {b"".join(m.body): m for m in got}
        receiver.complete_message(by_body[b"a"])
        receiver.dead_letter_message(by_body[b"b"], reason="test")
        receiver.abandon_message(by_body[BIG])
        [again] = _receive(receiver, 1)
        assert (b"".join(again.body), again.delivery_count) == (BIG, 1)
        receiver.complete_message(again)
    counts = broker.message_counts(queue)
    assert (counts["active"], counts["dead_letter"]) == (0, 1)


def test_sessions_over_websocket(ws_client: ServiceBusClient, make_queue: Any) -> None:
    queue = make_queue(requires_session=True)
    with ws_client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(f"m{i}", session_id="ws") for i in range(3)])
    with ws_client.get_queue_receiver(
        queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
    ) as receiver:
        assert receiver.session.session_id == "ws"
        got = _receive(receiver, 3)
        assert [str(m) for m in got] == ["m0", "m1", "m2"]
        for message in got:
            receiver.complete_message(message)
        receiver.session.set_state(b"over websocket")
        assert receiver.session.get_state() == b"over websocket"


def test_async_send_receive_settle_and_sessions_over_websocket(
    broker: ServiceBusBroker, make_queue: Any
) -> None:
    queue = make_queue()
    session_queue = make_queue(requires_session=True)

    async def run() -> tuple[list[bytes], list[str]]:
        async with AsyncServiceBusClient.from_connection_string(
            broker.connection_string, **ws_options(broker)
        ) as client:
            async with client.get_queue_sender(queue) as sender:
                await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage(BIG)])
            async with client.get_queue_sender(session_queue) as sender:
                await sender.send_messages([ServiceBusMessage(f"s{i}", session_id="S") for i in range(2)])
            async with client.get_queue_receiver(queue) as receiver:
                plain = await _receive_async(receiver, 2)
                for message in plain:
                    await receiver.complete_message(message)
            async with client.get_queue_receiver(session_queue, session_id="S") as receiver:
                in_session = await _receive_async(receiver, 2)
                for message in in_session:
                    await receiver.complete_message(message)
            return sorted(b"".join(m.body) for m in plain), [str(m) for m in in_session]

    assert asyncio.run(run()) == (sorted([b"a", BIG]), ["s0", "s1"])
    assert broker.message_counts(queue)["total"] == broker.message_counts(session_queue)["total"] == 0


def test_wss_with_tls_verified_by_the_broker_certificate(broker: ServiceBusBroker, make_queue: Any) -> None:
    # A non-emulator connection string means TLS: wss:// on the same port, trusting the broker's certificate.
    queue = make_queue()
    conn_str = broker.connection_string.replace(";UseDevelopmentEmulator=true", "").replace(
        f"sb://{broker.host}:{broker.port}", "sb://localhost"
    )
    with ServiceBusClient.from_connection_string(
        conn_str,
        transport_type=TransportType.AmqpOverWebsocket,
        custom_endpoint_address=f"sb://localhost:{broker.port}",
        connection_verify=broker.certificate_path,
    ) as client:
        with client.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("over wss"))
        with client.get_queue_receiver(queue) as receiver:
            [message] = _receive(receiver, 1)
            assert str(message) == "over wss"
            receiver.complete_message(message)

    async def run_async() -> str:
        async with AsyncServiceBusClient.from_connection_string(
            conn_str,
            transport_type=TransportType.AmqpOverWebsocket,
            custom_endpoint_address=f"sb://localhost:{broker.port}",
            connection_verify=broker.certificate_path,
        ) as aclient:
            async with aclient.get_queue_sender(queue) as sender:
                await sender.send_messages(ServiceBusMessage("async over wss"))
            async with aclient.get_queue_receiver(queue) as receiver:
                [message] = await _receive_async(receiver, 1)
                await receiver.complete_message(message)
                return str(message)

    assert asyncio.run(run_async()) == "async over wss"
    assert broker.message_counts(queue)["total"] == 0


def test_websocket_protocol_rules(broker: ServiceBusBroker) -> None:
    url = f"ws://127.0.0.1:{broker.port}/$servicebus/websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as not_found:
        websocket.create_connection(f"ws://127.0.0.1:{broker.port}/elsewhere", subprotocols=["AMQPWSB10"])
    assert not_found.value.status_code == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as no_subprotocol:
        websocket.create_connection(url)
    assert no_subprotocol.value.status_code == 400

    conn = websocket.create_connection(url, subprotocols=["AMQPWSB10"], timeout=10)
    try:
        conn.ping(b"are you there")
        opcode, frame = conn.recv_data_frame(control_frame=True)
        assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"are you there")
        conn.send("text is not AMQP")
        opcode, frame = conn.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1003
    finally:
        conn.close()


def _receive(receiver: Any, count: int) -> list[Any]:
    got: list[Any] = []
    for _attempt in range(10):
        got.extend(receiver.receive_messages(max_message_count=count - len(got), max_wait_time=2))
        if len(got) >= count:
            break
    assert len(got) == count, f"{len(got)} of {count} messages arrived"
    return got


async def _receive_async(receiver: Any, count: int) -> list[Any]:
    got: list[Any] = []
    for _attempt in range(10):
        got.extend(await receiver.receive_messages(max_message_count=count - len(got), max_wait_time=2))
        if len(got) >= count:
            break
    assert len(got) == count, f"{len(got)} of {count} messages arrived"
    return got
