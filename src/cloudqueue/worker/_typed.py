"""Typed handlers: a handler whose first parameter is annotated with a payload type gets
the decoded value, and the message too when it has a second parameter::

    def handle(order: Order, message: ReceivedMessage) -> None: ...

Written once for the worker and the serverless adapters. A handler whose first parameter
is unannotated, or annotated with a message class (or ``Any``/``object``), gets the
message as before and is called directly, without a wrapper. A payload that does not
decode raises :class:`~cloudqueue.errors.DecodeError` before the handler runs; the
worker dead-letters it at the first attempt (see :func:`undecodable_reason`).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._received import AsyncReceivedMessage, ReceivedMessage
from ..codecs import Codec, codec_for_type
from ..errors import DecodeError, InvalidArgument
from ._policy import MAX_REASON

__all__ = ["HandlerBinding", "bind", "binding_for", "undecodable_reason"]

_MESSAGE_TYPES: tuple[object, ...] = (ReceivedMessage, AsyncReceivedMessage, Any, object)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class HandlerBinding:
    """What a handler's signature asks for."""

    #: The type the payload is decoded into; None for a handler of raw messages.
    payload_type: object | None
    #: The codec for ``payload_type``; None for raw handlers and ``bytes``/``str``.
    codec: Codec | None
    #: The handler takes the message as its second argument.
    passes_message: bool


_RAW = HandlerBinding(None, None, passes_message=False)


def _hints_target(handler: Callable[..., Any]) -> object:
    """The function whose ``__annotations__`` describe ``handler``'s parameters."""
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and callable(target):
        target = type(target).__call__  # a callable object: its __call__'s annotations
    return target


def _name(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _resolved(handler: Callable[..., Any], parameter: inspect.Parameter) -> object:
    annotation = parameter.annotation
    if not isinstance(annotation, str):
        return annotation
    # ``from __future__ import annotations``: the annotation is text, resolved against
    # the handler's module (a type defined inside a function cannot be found there).
    try:
        hints = typing.get_type_hints(_hints_target(handler))
    except Exception as error:
        raise InvalidArgument(
            f"cannot resolve the annotation {annotation!r} of handler {_name(handler)}'s "
            f"parameter {parameter.name!r} ({type(error).__name__}: {error}): define the type "
            "at module level"
        ) from None
    return hints.get(parameter.name, inspect.Parameter.empty)


def _means_message(annotation: object) -> bool:
    if annotation is inspect.Parameter.empty or annotation in _MESSAGE_TYPES:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(arg in _MESSAGE_TYPES for arg in typing.get_args(annotation))
    return False


def binding_for(handler: Callable[..., Any]) -> HandlerBinding:
    """Read ``handler``'s signature. InvalidArgument when its first parameter's type has
    no codec, or its annotation cannot be resolved."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # a builtin without a signature: called as before
        return _RAW
    positional = [p for p in signature.parameters.values() if p.kind in _POSITIONAL]
    if not positional:
        return _RAW
    payload_type = _resolved(handler, positional[0])
    if _means_message(payload_type):
        return _RAW
    try:
        codec = codec_for_type(payload_type)
    except InvalidArgument as error:
        raise InvalidArgument(f"handler {_name(handler)}: {error}") from None
    second = positional[1] if len(positional) > 1 else None
    passes_message = second is not None and (
        second.default is inspect.Parameter.empty or _means_message(_resolved(handler, second))
    )
    return HandlerBinding(payload_type, codec, passes_message)


def _decoder(binding: HandlerBinding) -> Callable[[Any], object]:
    """``message -> payload`` for this binding."""
    kind: Any = binding.payload_type
    codec = binding.codec
    if codec is not None:
        # Prepared once per handler: the codec's per-type work (type checks, validator
        # lookup) is not repeated per message.
        decode = codec.decoder(kind)
        return lambda message: decode(message.body, message.attributes)
    if kind is bytes:
        return lambda message: message.body
    return lambda message: message.text()  # str: the body as UTF-8 text


def bind(handler: Callable[..., Any], is_async: bool) -> Callable[[Any], Any]:
    """``handler`` as a function of the message alone: itself for a raw handler, else a
    wrapper that decodes the payload first (raising DecodeError when it does not decode)."""
    binding = binding_for(handler)
    if binding.payload_type is None:
        return handler
    decode = _decoder(binding)
    if is_async:
        if binding.passes_message:
            async def typed_with_message(message: Any) -> object:
                return await handler(decode(message), message)
            bound: Callable[[Any], Any] = typed_with_message
        else:
            async def typed(message: Any) -> object:
                return await handler(decode(message))
            bound = typed
    elif binding.passes_message:
        def typed_sync_with_message(message: Any) -> object:
            return handler(decode(message), message)
        bound = typed_sync_with_message
    else:
        def typed_sync(message: Any) -> object:
            return handler(decode(message))
        bound = typed_sync
    functools.update_wrapper(bound, handler)  # logs and spans still name the user's handler
    return bound


def undecodable_reason(error: DecodeError) -> str:
    """The dead-letter reason for a payload that did not decode, cut like every reason."""
    text = f"undecodable payload: {error}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
