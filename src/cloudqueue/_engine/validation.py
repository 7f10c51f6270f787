"""Checking messages against a destination's limits before anything is sent."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from .._message import Message, encoded
from .._telemetry._carrier import carrier_names
from ..driver import Capabilities, Limits, TopicDriver
from ..errors import InvalidArgument, MessageTooLarge, Unsupported

__all__ = ["as_batch", "check_batch", "check_nack_delay", "check_reason", "check_seconds"]

_NOT_A_BATCH = (Message, str, bytes, bytearray, memoryview)


def as_batch(messages: object) -> Sequence[Message]:
    """The messages of a ``send_batch`` call as a sequence: any iterable of
    ``Message`` (a list, a tuple, a generator...) is taken; anything else is refused."""
    kind = type(messages)
    if kind is list or kind is tuple:
        return messages  # type: ignore[return-value]  # the elements are checked later
    if isinstance(messages, _NOT_A_BATCH) or not hasattr(messages, "__iter__"):
        raise InvalidArgument(
            "send_batch(messages): messages must be an iterable of cloudqueue.Message "
            f"(a list, a tuple, a generator...), not {kind.__name__}"
        )
    return list(messages)


def check_batch(
    messages: Sequence[Message], capabilities: Capabilities, measure: Callable[[Message], int],
    where: str,
) -> list[int]:
    """Validate every message; return their sizes. Raises on the first bad one,
    naming its index and the limit, so nothing of the batch is sent."""
    limits = capabilities.limits
    # The default measure of a message without attributes is its body's length: taken
    # directly, it saves a call per message (a tenth of a batched send on memory).
    plain = getattr(measure, "__func__", None) is TopicDriver.measure
    largest = limits.max_message_bytes
    sizes: list[int] = []
    append = sizes.append
    for index, message in enumerate(messages):
        if type(message) is not Message:
            raise InvalidArgument(
                f"message {index}: expected cloudqueue.Message, not {type(message).__name__}"
            )
        body = message.body
        if type(body) is not bytes:  # assigned after construction
            raise InvalidArgument(
                f"message {index}: body must be bytes, not {type(body).__name__}"
            )
        attributes = message.attributes
        if type(attributes) is not dict:
            raise InvalidArgument(
                f"message {index}: attributes must be a dict of str to str, "
                f"not {type(attributes).__name__}"
            )
        if attributes:
            _check_attributes(attributes, limits, index, where)
        if message.ordering_key is not None or message.deduplication_id is not None:
            _check_keys(message, capabilities, index, where)
        if message.delay is not None:
            _check_delay(message.delay, capabilities, index, where)
        size = len(body) if plain and not attributes else measure(message)
        if size > largest:
            raise MessageTooLarge(
                f"message {index} is {size} bytes (body and attributes); "
                f"{where} accepts at most {largest} bytes"
            )
        append(size)
    return sizes


def _check_attributes(attributes: dict[str, str], limits: Limits, index: int, where: str) -> None:
    if len(attributes) > limits.max_attributes:
        raise InvalidArgument(
            f"message {index} has {len(attributes)} attributes; {where} accepts at most "
            f"{limits.max_attributes}"
        )
    pattern = _compiled(limits.attribute_name_pattern)
    carried = carrier_names(limits.trace_carrier)
    for name, value in attributes.items():
        if type(name) is not str or not name:
            raise InvalidArgument(f"message {index}: attribute names must be non-empty strings")
        if type(value) is not str:
            raise InvalidArgument(
                f"message {index}: attribute {name!r} must be a str, not {type(value).__name__}"
            )
        try:
            name_bytes, value_bytes = len(name.encode()), len(value.encode())
        except UnicodeEncodeError:
            encoded(name, f"message {index}: attribute name {name[:40]!r}")
            encoded(value, f"message {index}: attribute {name!r} value")
            raise
        if name_bytes > limits.max_attribute_name_bytes:
            raise InvalidArgument(
                f"message {index}: attribute name {name[:40]!r}... is longer than "
                f"{limits.max_attribute_name_bytes} bytes, the limit of {where}"
            )
        if value_bytes > limits.max_attribute_value_bytes:
            raise InvalidArgument(
                f"message {index}: attribute {name!r} value is longer than "
                f"{limits.max_attribute_value_bytes} bytes, the limit of {where}"
            )
        if pattern is not None and not pattern.fullmatch(name):
            raise InvalidArgument(
                f"message {index}: attribute name {name!r} is not allowed on {where} "
                f"(names must match {limits.attribute_name_pattern})"
            )
        if name in carried:
            raise InvalidArgument(
                f"message {index}: attribute name {name!r} is reserved on {where}: it "
                "carries trace context (see cloudqueue.driver.TraceCarrier)"
            )
        for prefix in limits.reserved_attribute_prefixes:
            if name.startswith(prefix):
                raise InvalidArgument(
                    f"message {index}: attribute name {name!r} uses the prefix {prefix!r}, "
                    f"reserved on {where}"
                )


def _check_keys(message: Message, capabilities: Capabilities, index: int, where: str) -> None:
    limit = capabilities.limits.max_key_length
    for label, value, supported, how in (
        ("ordering_key", message.ordering_key, capabilities.ordering, "ordered=True"),
        ("deduplication_id", message.deduplication_id, capabilities.deduplication,
         "deduplicated=True"),
    ):
        if value is None:
            continue
        if not supported:
            raise Unsupported(
                f"message {index} sets {label} but {where} does not support it "
                f"(declare the destination with {how} where the provider can)"
            )
        if type(value) is not str or not value:
            raise InvalidArgument(f"message {index}: {label} must be a non-empty str")
        if not value.isascii():  # the common case needs no encoding
            encoded(value, f"message {index}: {label}")
        if len(value) > limit:
            raise InvalidArgument(
                f"message {index}: {label} is {len(value)} characters; {where} accepts "
                f"at most {limit}"
            )
        for prefix in capabilities.limits.reserved_key_prefixes:
            if value.startswith(prefix):
                raise InvalidArgument(
                    f"message {index}: {label} {value[:40]!r} starts with {prefix!r}, "
                    f"reserved on {where} for the ones the provider makes up"
                )


def _check_delay(delay: float, capabilities: Capabilities, index: int, where: str) -> None:
    check_seconds(delay, f"message {index}: delay")
    if delay == 0:
        return
    limit = capabilities.limits.max_delay
    if not capabilities.delayed_delivery or limit is None:
        raise Unsupported(f"message {index} has a delay but {where} has no delayed delivery")
    if delay > limit:
        raise InvalidArgument(
            f"message {index}: delay of {delay:g}s exceeds {limit:g}s, the limit of {where}"
        )


def check_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise InvalidArgument(f"{what} must be a finite number of seconds >= 0, not {value}")
    return float(value)


def check_reason(reason: object) -> str:
    """A ``dead_letter`` reason: text that every provider can carry."""
    if type(reason) is not str:
        raise InvalidArgument(f"dead_letter reason must be a str, not {type(reason).__name__}")
    encoded(reason, "dead_letter reason")
    return reason


def check_nack_delay(delay: float, capabilities: Capabilities, where: str) -> float:
    delay = check_seconds(delay, "nack delay")
    if delay == 0:
        return delay
    limit = capabilities.limits.max_nack_delay
    if not capabilities.nack_delay or limit is None:
        raise Unsupported(f"{where} cannot delay a nack; use nack() without a delay")
    if delay > limit:
        raise InvalidArgument(
            f"nack delay of {delay:g}s exceeds {limit:g}s, the limit of {where}"
        )
    return delay


@lru_cache(maxsize=32)
def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None
