"""The ``<entity>/$management`` node: request/response operations the SDK uses.

Status keys on this node are ``statusCode``/``statusDescription`` (unlike ``$cbs``);
failures carry the AMQP condition in ``errorCondition`` which the SDK maps to its
exception types.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

from proton import UNDESCRIBED, Array, Data, Message, int32, symbol, timestamp

from ._entities import Store
from ._errors import ARGUMENT_ERROR, MESSAGE_NOT_FOUND, BrokerError
from ._message import StoredMessage
from ._namespace import Namespace

MANAGEMENT_SUFFIX = "/$management"
_UNDESCRIBED = cast(Any, UNDESCRIBED)  # proton types the marker too narrowly
_VENDOR = "com.microsoft:"


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Array):
        return list(value.elements)
    return list(value)


def _tokens(body: dict[str, Any]) -> list[uuid.UUID]:
    return [t if isinstance(t, uuid.UUID) else uuid.UUID(str(t)) for t in _items(body.get("lock-tokens"))]


def _session_id(body: dict[str, Any]) -> str | None:
    sid = body.get("session-id")
    return None if sid is None else str(sid)


def _message_list(messages: list[StoredMessage], with_lock: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        entry: dict[str, Any] = {"message": msg.encode(include_lock=with_lock)}
        if with_lock and msg.lock_token is not None:
            entry["lock-token"] = msg.lock_token
        out.append(entry)
    return out


class ManagementNode:
    """Dispatches one ``$management`` request against the namespace."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self._ops: dict[str, Callable[[str, dict[str, Any]], tuple[int, Any]]] = {
            "renew-lock": self._renew_lock,
            "schedule-message": self._schedule,
            "cancel-scheduled-message": self._cancel,
            "peek-message": self._peek,
            "receive-by-sequence-number": self._receive_by_seq,
            "update-disposition": self._update_disposition,
            "get-session-state": self._get_session_state,
            "set-session-state": self._set_session_state,
            "renew-session-lock": self._renew_session_lock,
            "get-message-sessions": self._list_sessions,
        }

    def handle(self, node_address: str, request: Message) -> Message:
        props: dict[Any, Any] = request.properties or {}
        operation = str(props.get("operation", ""))
        path = Namespace.entity_path(node_address)
        if path.lower().endswith(MANAGEMENT_SUFFIX):
            path = path[: -len(MANAGEMENT_SUFFIX)]
        handler = self._ops.get(operation.removeprefix(_VENDOR))
        body = request.body if isinstance(request.body, dict) else {}
        try:
            if handler is None:
                raise BrokerError("amqp:not-implemented", f"Unsupported operation {operation!r}", 501)
            status, value = handler(path, {str(k): v for k, v in body.items()})
            reply_props: dict[str, Any] = {"statusCode": int32(status), "statusDescription": "OK"}
        except BrokerError as err:
            value = None
            reply_props = {
                "statusCode": int32(err.status if err.status >= 400 else 400),
                "statusDescription": err.description,
                "errorCondition": symbol(err.condition),
            }
        return Message(correlation_id=request.id, properties=reply_props, body=value)

    def _store(self, path: str) -> Store:
        return self.namespace.store(path)

    def _renew_lock(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store(path)
        expirations = [timestamp(store.renew(token)) for token in _tokens(body)]
        return 200, {"expirations": Array(_UNDESCRIBED, Data.TIMESTAMP, *expirations)}

    def _schedule(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        inbox = self.namespace.inbox(path)
        seqs: list[int] = []
        for entry in _items(body.get("messages")):
            raw = entry.get("message") if isinstance(entry, dict) else None
            if raw is None:
                raise BrokerError(ARGUMENT_ERROR, "schedule-message entry without message")
            seqs.extend(self.namespace.send(inbox, bytes(raw)))
        return 200, {"sequence-numbers": Array(_UNDESCRIBED, Data.LONG, *seqs)}

    def _cancel(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        inbox = self.namespace.inbox(path)
        seqs = [int(s) for s in _items(body.get("sequence-numbers"))]
        for store in inbox.targets():
            store.cancel_scheduled(seqs)
        return 200, None

    def _peek(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store(path)
        start = int(body.get("from-sequence-number") or 0)
        count = int(body.get("message-count") or 1)
        found = store.peek(start, count, _session_id(body))
        if not found:
            return 204, None
        return 200, {"messages": _message_list(found, with_lock=False)}

    def _receive_by_seq(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store(path)
        seqs = [int(s) for s in _items(body.get("sequence-numbers"))]
        delete = int(body.get("receiver-settle-mode") or 0) == 0
        found = store.lock_deferred(seqs, _session_id(body), delete)
        if not found:
            raise BrokerError(MESSAGE_NOT_FOUND, "Failed to retrieve deferred messages: not found.", 404)
        return 200, {"messages": _message_list(found, with_lock=not delete)}

    def _update_disposition(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store(path)
        status = str(body.get("disposition-status"))
        modify = body.get("properties-to-modify") or None
        for token in _tokens(body):
            if status == "completed":
                store.complete(token)
            elif status == "abandoned":
                store.abandon(token, modify)
            elif status == "defered":
                store.defer(token, modify)
            elif status == "suspended":
                reason = body.get("deadletter-reason")
                desc = body.get("deadletter-description")
                store.dead_letter_locked(
                    token, None if reason is None else str(reason),
                    None if desc is None else str(desc), modify,
                )
            else:
                raise BrokerError(ARGUMENT_ERROR, f"Unknown disposition status {status!r}")
        return 200, None

    def _session_info(self, path: str, body: dict[str, Any]) -> tuple[Store, str]:
        store = self._store(path)
        sid = _session_id(body)
        if sid is None:
            raise BrokerError(ARGUMENT_ERROR, "session-id is required")
        return store, sid

    def _get_session_state(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store, sid = self._session_info(path, body)
        info = store.sessions.get(sid)
        return 200, {"session-state": None if info is None else info.state}

    def _set_session_state(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store, sid = self._session_info(path, body)
        from ._entities import SessionInfo

        state = body.get("session-state")
        store.sessions.setdefault(sid, SessionInfo()).state = None if state is None else bytes(state)
        return 200, None

    def _renew_session_lock(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store, sid = self._session_info(path, body)
        return 200, {"expiration": timestamp(store.renew_session(sid))}

    def _list_sessions(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store(path)
        ids = [
            sid for sid, info in store.sessions.items()
            if info.state is not None or any(m.session_id == sid for m in store.messages.values())
        ]
        skip = int(body.get("skip") or 0)
        top = int(body.get("top") or len(ids))
        ids = ids[skip : skip + top]
        if not ids:
            return 204, None
        return 200, {"skip": int32(skip + len(ids)), "sessions-ids": ids}
