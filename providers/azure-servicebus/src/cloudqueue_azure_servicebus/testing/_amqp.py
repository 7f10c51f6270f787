"""One AMQP connection driven through proton's protocol engine (no proton reactor).

The server loop feeds socket bytes in and takes frames out; this module turns
proton events into broker operations. Link roles (named from the broker's side):

* ``InboundLink``: the client sends messages to a queue or topic.
* ``RequestLink`` / ``ReplyLink``: request/response pairs for ``$cbs`` and
  ``<entity>/$management``; replies go back on the reply link of the same AMQP
  session whose source is the same node address.
* ``ConsumerLink``: the broker delivers messages from a queue, subscription or
  dead-letter subqueue; it implements the ``Consumer`` protocol of ``_entities``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from proton import (
    Collector,
    Condition,
    Connection,
    Delivery,
    Endpoint,
    Event,
    Link,
    Message,
    Terminus,
    Transport,
    symbol,
    ulong,
)

from ._cbs import CBS_NODE, handle_cbs
from ._delivery_ids import DeliveryIdRepair
from ._entities import Store
from ._errors import (
    SESSION_LOCK_LOST,
    TIMEOUT,
    BrokerError,
)
from ._management import MANAGEMENT_SUFFIX
from ._message import StoredMessage
from ._namespace import Inbox, Namespace
from ._timers import now_ms

if TYPE_CHECKING:
    from ._state import BrokerState

log = logging.getLogger(__name__)

SESSION_FILTER = symbol("com.microsoft:session-filter")
SESSION_LOCKED_UNTIL = symbol("com.microsoft:locked-until-utc")
LINK_TIMEOUT = symbol("com.microsoft:timeout")
DEAD_LETTER_CONDITION = "com.microsoft:dead-letter"
DOTNET_EPOCH_TICKS = 621355968000000000  # .NET ticks at the Unix epoch
INBOUND_CREDIT = 1000
MAX_FRAME_SIZE = 256 * 1024
DEFAULT_SESSION_WAIT_MS = 60_000
_tags = itertools.count()


def _condition(name: str, description: str) -> Condition:
    # Always send an info map: the SDK indexes all three error fields of a rejection.
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): "local-broker"})


def _ticks(ms: int) -> int:
    return DOTNET_EPOCH_TICKS + ms * 10_000


def _node(address: str | None) -> str:
    return Namespace.entity_path(address or "")


def _is_management(address: str) -> bool:
    return address.lower().endswith(MANAGEMENT_SUFFIX)


class _Frames:
    """Collects the frames of one incoming delivery into its bytes."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.buffer = bytearray()

    def complete(self, delivery: Delivery) -> bytes | None:
        """The delivery's bytes once its last frame arrived, else None."""
        # Copy proton's bytes at once: its buffers are reused.
        chunk = self.link.recv(delivery.pending)
        if chunk:
            self.buffer += chunk
        if delivery.partial:
            return None
        raw = bytes(self.buffer)
        self.buffer.clear()
        self.link.advance()
        return raw


class InboundLink:
    def __init__(self, state: BrokerState, link: Link, inbox: Inbox) -> None:
        self.state = state
        self.link = link
        self.inbox = inbox
        self.frames = _Frames(link)

    def on_delivery(self, delivery: Delivery) -> None:
        raw = self.frames.complete(delivery)
        if raw is None:
            return
        try:
            self.state.namespace.send(self.inbox, raw)
            delivery.update(Delivery.ACCEPTED)
        except BrokerError as err:
            delivery.local.condition = _condition(err.condition, err.description)
            delivery.update(Delivery.REJECTED)
        delivery.settle()
        _top_up(self.link)


def _top_up(link: Link) -> None:
    if link.credit < INBOUND_CREDIT // 2:
        link.flow(INBOUND_CREDIT - link.credit)


class ReplyLink:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.pending: deque[bytes] = deque()

    def send(self, message: Message) -> None:
        self.pending.append(message.encode())
        self.flush()

    def flush(self) -> None:
        while self.pending and self.link.credit > 0:
            delivery = self.link.delivery(str(next(_tags)))
            self.link.send(self.pending.popleft())
            self.link.advance()
            delivery.settle()


class RequestLink:
    def __init__(self, state: BrokerState, link: Link, address: str) -> None:
        self.state = state
        self.link = link
        self.address = address
        self.frames = _Frames(link)

    def on_delivery(self, delivery: Delivery) -> None:
        raw = self.frames.complete(delivery)
        if raw is None:
            return
        request = Message()
        request.decode(raw)
        if self.address == CBS_NODE:
            reply = handle_cbs(request, self.state.tokens)
        else:
            reply = self.state.management.handle(self.address, request)
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        replies: dict[str, ReplyLink] = getattr(self.link.session, "cq_replies", None) or {}
        target = replies.get(self.address.lower())
        if target is None:
            log.warning("no reply link for %s", self.address)
        else:
            target.send(reply)
        _top_up(self.link)


class ConsumerLink:
    """Delivers from a store; one per receiving client link."""

    def __init__(self, state: BrokerState, link: Link, store: Store) -> None:
        self.state = state
        self.link = link
        self.store = store
        self.session_id: str | None = None
        self.receive_and_delete = link.remote_snd_settle_mode == Link.SND_SETTLED
        self.closed = False

    # --- Consumer protocol -------------------------------------------------------------

    def credit(self) -> int:
        return 0 if self.closed else int(self.link.credit)

    def deliver(self, store: Store, msg: StoredMessage) -> None:
        if self.receive_and_delete:
            tag = uuid.uuid4().bytes_le
            payload = msg.encode(include_lock=False)
        else:
            assert msg.lock_token is not None
            tag = msg.lock_token.bytes_le  # the SDK reads the lock token from the tag
            payload = msg.encode(include_lock=True)
        delivery = self.link.delivery(cast(Any, tag))  # proton accepts bytes; typed as str
        # proton decodes tags as UTF-8 text on the way back, so remember the token here.
        delivery.cq_token = msg.lock_token
        self.link.send(payload)
        self.link.advance()
        if self.receive_and_delete:
            delivery.settle()

    def session_lost(self) -> None:
        self.close(SESSION_LOCK_LOST, "The session lock has expired on the session.")

    # --- proton events -----------------------------------------------------------------

    def on_flow(self) -> None:
        self.store.dispatch()
        if self.link.drain_mode:
            self.link.drained()

    def on_disposition(self, delivery: Delivery) -> None:
        state = delivery.remote_state
        if not state or self.receive_and_delete:
            if delivery.remote_settled:
                delivery.settle()
            return
        token = getattr(delivery, "cq_token", None)
        if not isinstance(token, uuid.UUID):
            delivery.settle()
            return
        store = self.store
        try:
            if state == Delivery.ACCEPTED:
                store.complete(token)
            elif state == Delivery.RELEASED:
                store.release(token)
            elif state == Delivery.MODIFIED:
                annotations = dict(delivery.remote.annotations or {})
                if delivery.remote.undeliverable:
                    store.defer(token, annotations)
                else:
                    store.abandon(token, annotations)
            elif state == Delivery.REJECTED:
                reason, description = _dead_letter_details(delivery.remote.condition)
                store.dead_letter_locked(token, reason, description)
            delivery.update(state)
        except BrokerError as err:
            delivery.local.condition = _condition(err.condition, err.description)
            delivery.update(Delivery.REJECTED)
        delivery.settle()

    def close(self, condition: str | None = None, description: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.store.detach(self)
        if condition is not None:
            self.link.condition = _condition(condition, description)
        self.link.close()


def _dead_letter_details(condition: Condition | None) -> tuple[str | None, str | None]:
    if condition is None:
        return None, None
    info: Any = condition.info or {}
    reason = info.get("DeadLetterReason")
    desc = info.get("DeadLetterErrorDescription")
    return (None if reason is None else str(reason), None if desc is None else str(desc))


class SessionWait:
    """A "next available session" attach parked until a session has messages or time runs out."""

    def __init__(self, conn: AmqpConnection, link: Link, consumer: ConsumerLink, timeout_ms: int) -> None:
        self.conn = conn
        self.link = link
        self.consumer = consumer
        self.done = False
        store = consumer.store
        conn.state.timers.at(now_ms() + timeout_ms, self._timeout)
        store.waiters.append(self)

    def offer(self, store: Store, session_id: str) -> None:
        self.done = True
        self.conn.open_consumer(self.link, self.consumer, session_id)

    def _timeout(self) -> None:
        if self.done:
            return
        self.done = True
        with contextlib.suppress(ValueError):
            self.consumer.store.waiters.remove(self)
        self.consumer.closed = True
        _refuse_attach(self.link, TIMEOUT, "No unlocked session became available in time.")

    def cancel(self) -> None:
        self.done = True
        with contextlib.suppress(ValueError):
            self.consumer.store.waiters.remove(self)


def _open_link(link: Link, session_id: str | None = None) -> None:
    """Attach our end with source and target filled in: the SDK requires both."""
    link.source.copy(link.remote_source)
    link.target.copy(link.remote_target)
    if session_id is not None:
        # Echo the session actually locked: the SDK reads it from our source filter.
        link.source.filter.clear()
        link.source.filter.put_object({SESSION_FILTER: session_id})
    if link.is_sender:
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
    link.open()


def _session_filter(link: Link) -> tuple[bool, str | None]:
    """Return (is_session_receiver, requested session id or None for next available)."""
    data = link.remote_source.filter
    data.rewind()
    if not data.next():
        return False, None
    filters = data.get_object()
    if not isinstance(filters, dict):
        return False, None
    for key, value in filters.items():
        if str(key) == str(SESSION_FILTER):
            if hasattr(value, "value"):  # described
                value = value.value
            return True, None if value is None else str(value)
    return False, None


class AmqpConnection:
    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self.connection = Connection()
        self.collector = Collector()
        self.connection.collect(self.collector)
        self.transport = Transport(Transport.SERVER)
        self.transport.max_frame_size = MAX_FRAME_SIZE
        sasl = self.transport.sasl()
        sasl.allowed_mechs("ANONYMOUS")
        self.transport.bind(self.connection)
        self.consumers: list[ConsumerLink] = []
        self.waits: list[SessionWait] = []
        self.finished = False
        # Frames pass through it both ways: the SDK may reuse a delivery-id under concurrency.
        self.delivery_ids = DeliveryIdRepair()
        self.pending_out = bytearray()

    # --- byte pumping (called by the server loop) -------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            self.transport.close_tail()
            self.process()
            return
        view = memoryview(self.delivery_ids.incoming(data))
        while view:
            # proton takes at most capacity() bytes per push; processing frees more room.
            room = self.transport.capacity()
            if room <= 0:
                self.transport.close_tail()
                break
            self.transport.push(bytes(view[:room]))
            view = view[room:]
            self.process()
        self.process()

    def output(self) -> bytes:
        # Drain proton completely: its buffer can end mid-frame, and the filter only
        # passes whole frames on, so stopping early could hold a frame back for good.
        while (pending := self.transport.pending()) > 0:
            frames = bytes(self.transport.peek(pending) or b"")
            self.transport.pop(len(frames))
            self.pending_out += self.delivery_ids.outgoing(frames)
        return bytes(self.pending_out)

    def sent(self, count: int) -> None:
        del self.pending_out[:count]

    @property
    def output_closed(self) -> bool:
        return self.transport.pending() < 0 and not self.pending_out

    def process(self) -> None:
        while True:
            event = self.collector.peek()
            if event is None:
                return
            try:
                self._dispatch(event)
            except Exception:  # keep the broker alive; a broken link is the client's problem
                log.exception("error handling %s", event.type)
            self.collector.pop()

    def shutdown(self) -> None:
        if self.finished:
            return
        self.finished = True
        for consumer in self.consumers:
            consumer.closed = True
            consumer.store.detach(consumer)
        for wait in self.waits:
            wait.cancel()

    # --- events --------------------------------------------------------------------------

    def _dispatch(self, event: Any) -> None:  # proton types every event field as optional
        etype = event.type
        if etype == Event.CONNECTION_REMOTE_OPEN:
            self.connection.container = "cloudqueue-servicebus-broker"
            self.connection.open()
        elif etype == Event.SESSION_REMOTE_OPEN:
            event.session.open()
        elif etype == Event.LINK_REMOTE_OPEN:
            self._on_link_open(event.link)
        elif etype == Event.LINK_FLOW:
            handler = getattr(event.link, "cq", None)
            if isinstance(handler, ConsumerLink):
                handler.on_flow()
            elif isinstance(handler, ReplyLink):
                handler.flush()
        elif etype == Event.DELIVERY:
            delivery = event.delivery
            handler = getattr(delivery.link, "cq", None)
            if handler is None:
                return
            if delivery.link.is_receiver:
                if delivery.readable:
                    handler.on_delivery(delivery)
            elif isinstance(handler, ConsumerLink) and delivery.updated:
                handler.on_disposition(delivery)
        elif etype == Event.LINK_REMOTE_CLOSE:
            link = event.link
            handler = getattr(link, "cq", None)
            if isinstance(handler, ConsumerLink):
                handler.close()
            elif link.state & Endpoint.LOCAL_ACTIVE or link.state & Endpoint.LOCAL_UNINIT:
                link.close()
            wait = getattr(link, "cq_wait", None)
            if isinstance(wait, SessionWait):
                wait.cancel()
        elif etype == Event.SESSION_REMOTE_CLOSE:
            event.session.close()
        elif etype == Event.CONNECTION_REMOTE_CLOSE:
            self.connection.close()
        elif etype == Event.TRANSPORT_CLOSED:
            self.shutdown()

    def _on_link_open(self, link: Link) -> None:
        if link.is_receiver:
            address = _node(link.remote_target.address)
            try:
                if address == CBS_NODE or _is_management(address):
                    link.cq = RequestLink(self.state, link, address)
                else:
                    inbox = self.state.namespace.inbox(address)
                    link.cq = InboundLink(self.state, link, inbox)
                    link.max_message_size = ulong(inbox.props.max_message_bytes)
            except BrokerError as err:
                self._refuse(link, err)
                return
            _open_link(link)
            link.flow(INBOUND_CREDIT)
            return
        address = _node(link.remote_source.address)
        if address == CBS_NODE or _is_management(address):
            replies = getattr(link.session, "cq_replies", None)
            if replies is None:
                replies = {}
                link.session.cq_replies = replies
            reply = ReplyLink(link)
            replies[address.lower()] = reply
            link.cq = reply
            _open_link(link)
            return
        try:
            store = self.state.namespace.store(address)
        except BrokerError as err:
            self._refuse(link, err)
            return
        consumer = ConsumerLink(self.state, link, store)
        link.max_message_size = ulong(store.props.max_message_bytes)
        is_session, wanted = _session_filter(link)
        if store.sessionful and not is_session:
            self._refuse(link, BrokerError(
                "amqp:not-allowed",
                "It is not possible for an entity that requires sessions to create a non-sessionful "
                "message receiver."))
            return
        if not is_session:
            self.open_consumer(link, consumer, None)
            return
        try:
            session_id = store.lock_session(wanted, consumer)
        except BrokerError as err:
            self._refuse(link, err)
            return
        if session_id:
            # lock_session set the owner before the consumer knew its session id.
            self.open_consumer(link, consumer, session_id)
            return
        props = link.remote_properties or {}
        timeout = int(props.get(LINK_TIMEOUT) or DEFAULT_SESSION_WAIT_MS)
        wait = SessionWait(self, link, consumer, timeout)
        link.cq_wait = wait
        self.waits.append(wait)

    def open_consumer(self, link: Link, consumer: ConsumerLink, session_id: str | None) -> None:
        store = consumer.store
        if session_id is not None:
            info = store.sessions.get(session_id)
            if info is None or info.owner is not consumer:
                store.lock_session(session_id, consumer)
            consumer.session_id = session_id
        link.cq = consumer
        if session_id is not None:
            link.properties = {
                SESSION_LOCKED_UNTIL: _ticks(store.session_locked_until(session_id))
            }
        _open_link(link, session_id)
        self.consumers.append(consumer)
        store.attach(consumer)
        store.dispatch()

    def _refuse(self, link: Link, err: BrokerError) -> None:
        _refuse_attach(link, err.condition, err.description)


def _refuse_attach(link: Link, condition: str, description: str) -> None:
    """Refuse a link the AMQP way: an attach with our terminus null, then a detach with the error.

    (AMQP 1.0 section 2.6.3; the service does so.) The null terminus tells the SDK the link
    never opened (``link._incoming_attach``), so it skips its attach callback and raises the
    detach's error from the open call instead of treating the link as attached.
    """
    ours, theirs = (link.source, link.target) if link.is_sender else (link.target, link.source)
    ours.type = Terminus.UNSPECIFIED  # encoded as null
    theirs.copy(link.remote_target if link.is_sender else link.remote_source)
    link.open()
    link.condition = _condition(condition, description)
    link.close()

