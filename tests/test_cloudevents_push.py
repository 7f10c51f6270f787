"""Pub/Sub push: a handler annotated with the CloudEvent type gets Eventarc's own event for
an Eventarc request (HTTP binary and structured mode, ASGI and WSGI), and the event a
plain push request's message carries otherwise."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from typing import Any

import httpx
import pytest

import cloudqueue
from cloudqueue.cloudevents import CloudEvent, to_message
from cloudqueue.serverless import pubsub_push, pubsub_push_wsgi

PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
SOURCE = "//pubsub.googleapis.com/projects/myproject/topics/mytopic"
TIME = datetime.datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=datetime.UTC)


def envelope(data: bytes, attributes: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": "m-1",
                    "attributes": attributes or {}, "publishTime": "2026-03-01T12:30:15.250Z"},
        "subscription": "projects/myproject/subscriptions/mysubscription",
    }


SEEN: list[tuple[Any, bytes]] = []


def sync_handler(event: CloudEvent, message: cloudqueue.ReceivedMessage) -> None:
    SEEN.append((event, message.body))


async def async_handler(event: CloudEvent, message: cloudqueue.AsyncReceivedMessage) -> None:
    SEEN.append((event, message.body))


def post(kind: str, handler: Any, content: bytes, headers: dict[str, str]) -> int:
    """POST through the adapter's own ASGI or WSGI interface; the answer's status."""
    if kind == "asgi":
        async def send() -> int:
            transport = httpx.ASGITransport(app=pubsub_push(handler))
            async with httpx.AsyncClient(transport=transport, base_url="http://push") as client:
                return (await client.post("/", content=content, headers=headers)).status_code
        return asyncio.run(send())
    with httpx.Client(transport=httpx.WSGITransport(app=pubsub_push_wsgi(handler)),
                      base_url="http://push") as client:
        return client.post("/", content=content, headers=headers).status_code


HANDLERS = pytest.mark.parametrize(("kind", "handler"), [
    ("asgi", sync_handler), ("asgi", async_handler), ("wsgi", sync_handler), ("wsgi", async_handler),
])


@HANDLERS
def test_a_binary_eventarc_request_hands_over_its_own_event(kind: str, handler: Any) -> None:
    SEEN.clear()
    body = envelope(b"payload")
    status = post(kind, handler, json.dumps(body).encode(), {
        "content-type": "application/json", "ce-specversion": "1.0", "ce-type": PUBLISHED,
        "ce-source": SOURCE, "ce-id": "evt-1", "ce-time": "2026-03-01T12:30:15.25Z",
    })
    assert status == 204
    ((event, payload),) = SEEN
    assert event.get_attributes() == {"specversion": "1.0", "type": PUBLISHED, "source": SOURCE,
                                      "id": "evt-1", "time": TIME, "datacontenttype": "application/json"}
    assert event.get_data() == body
    assert payload == b"payload"  # the message still is the Pub/Sub message


@HANDLERS
def test_a_structured_eventarc_request_hands_over_its_own_event(kind: str, handler: Any) -> None:
    SEEN.clear()
    sent = CloudEvent({"type": PUBLISHED, "source": SOURCE, "id": "evt-2", "time": TIME,
                       "datacontenttype": "application/json"}, envelope(b"structured"))
    status = post(kind, handler, to_message(sent, "http").body,
                  {"content-type": "application/cloudevents+json; charset=utf-8"})
    assert status == 204
    ((event, payload),) = SEEN
    assert event.get_attributes() == sent.get_attributes()
    assert event.get_data() == sent.get_data()
    assert payload == b"structured"


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_plain_push_request_hands_over_the_event_its_message_carries(kind: str) -> None:
    SEEN.clear()
    sent = CloudEvent({"type": "com.example.order.placed", "source": "/shop", "id": "order-7",
                       "time": TIME, "datacontenttype": "application/json"}, {"order": 7})
    carried = to_message(sent, "pubsub", "binary")
    status = post(kind, sync_handler, json.dumps(envelope(carried.body, carried.attributes)).encode(),
                  {"content-type": "application/json"})
    assert status == 204
    ((event, _),) = SEEN
    assert event.get_attributes() == sent.get_attributes()
    assert event.get_data() == {"order": 7}


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_plain_push_message_without_an_event_fails_the_request(kind: str) -> None:
    SEEN.clear()
    status = post(kind, sync_handler, json.dumps(envelope(b"just bytes")).encode(),
                  {"content-type": "application/json"})
    assert status == 500 and SEEN == []  # Pub/Sub redelivers, then dead-letters by its policy
