"""A message as the broker stores it, and how it is rendered for delivery."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

from proton import Described, symbol, timestamp, uint, ulong

from ._codec import (
    APPLICATION_PROPERTIES,
    HEADER,
    MESSAGE_ANNOTATIONS,
    Sections,
    encode_value,
    parse_message,
)

SEQUENCE_NUMBER = symbol("x-opt-sequence-number")
ENQUEUED_TIME = symbol("x-opt-enqueued-time")
LOCKED_UNTIL = symbol("x-opt-locked-until")
LOCK_TOKEN = symbol("x-opt-lock-token")
SCHEDULED_TIME = symbol("x-opt-scheduled-enqueue-time")
DEADLETTER_SOURCE = symbol("x-opt-deadletter-source")
PARTITION_KEY = symbol("x-opt-partition-key")


class State(Enum):
    ACTIVE = "active"  # waiting in the ready queue
    LOCKED = "locked"  # delivered under peek-lock
    DEFERRED = "deferred"  # only reachable by sequence number
    SCHEDULED = "scheduled"  # becomes active at scheduled_ms


def _header_field(header: list[Any] | None, index: int) -> Any:
    if header is None or len(header) <= index:
        return None
    return header[index]


@dataclass(eq=False)
class StoredMessage:
    seq: int
    sections: Sections
    size: int
    enqueued_ms: int
    message_id: str | None
    session_id: str | None
    expires_ms: int | None = None
    attempts: int = 0  # earlier failed deliveries: the AMQP header delivery-count
    state: State = State.ACTIVE
    lock_token: uuid.UUID | None = None
    locked_until_ms: int = 0
    scheduled_ms: int | None = None
    deferred: bool = False  # stays deferred when its lock (from receive-deferred) ends
    owner: object | None = None  # the consumer link holding the lock, if any
    hops: int = 0  # auto-forwarding transfers so far (the service allows MAX_FORWARD_HOPS)

    @classmethod
    def parse(cls, raw: bytes, seq: int, now_ms: int) -> StoredMessage:
        sec = parse_message(raw)
        props = sec.properties or []
        message_id = props[0] if props else None
        session_id = props[10] if len(props) > 10 else None
        return cls(
            seq=seq,
            sections=sec,
            size=len(raw),
            enqueued_ms=now_ms,
            message_id=None if message_id is None else str(message_id),
            session_id=None if session_id is None else str(session_id),
        )

    @property
    def header_ttl_ms(self) -> int | None:
        ttl = _header_field(self.sections.header, 2)
        return int(ttl) if ttl else None

    @property
    def scheduled_annotation_ms(self) -> int | None:
        value = self.sections.message_annotations.get(SCHEDULED_TIME)
        return int(value) if value else None

    def set_application_properties(self, extra: dict[str, Any]) -> None:
        """Merge properties (dead-letter reason etc.) and re-encode that one section."""
        props = dict(self.sections.application_properties or {})
        props.update(extra)
        self.sections.application_properties = props
        self.sections.raw_application_properties = encode_value(
            Described(ulong(APPLICATION_PROPERTIES), props)
        )

    def replace_application_properties(self, props: dict[str, Any]) -> None:
        """Replace all user properties (a rule action's result) and re-encode that section."""
        section: dict[Any, Any] = dict(props)
        self.sections.application_properties = section
        self.sections.raw_application_properties = (
            encode_value(Described(ulong(APPLICATION_PROPERTIES), section)) if section else b""
        )

    def annotate(self, extra: dict[Any, Any]) -> None:
        self.sections.message_annotations.update(extra)

    def encode(self, include_lock: bool) -> bytes:
        """Render the message as the service delivers it: header and broker annotations."""
        old = self.sections.header or []
        header = [
            _header_field(old, 0),
            _header_field(old, 1),
            _header_field(old, 2),
            _header_field(old, 3),
            uint(self.attempts),
        ]
        ann = dict(self.sections.message_annotations)
        ann[SEQUENCE_NUMBER] = self.seq
        ann[ENQUEUED_TIME] = timestamp(self.enqueued_ms)
        if include_lock and self.lock_token is not None:
            ann[LOCKED_UNTIL] = timestamp(self.locked_until_ms)
            ann[LOCK_TOKEN] = self.lock_token
        return b"".join(
            (
                encode_value(Described(ulong(HEADER), header)),
                encode_value(Described(ulong(MESSAGE_ANNOTATIONS), ann)),
                self.sections.raw_properties,
                self.sections.raw_application_properties,
                self.sections.raw_rest,
            )
        )
