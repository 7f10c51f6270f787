"""Choosing a codec by a value's type (sending) or by an annotation (receiving).

pydantic, msgspec and cloudevents are optional: a type can only come from one of them if
the program imported it already, so each is looked for in ``sys.modules`` and its codec
module imported on first use, never before.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgument
from ._base import Codec, Decoder, describe
from ._dataclass import DataclassCodec
from ._json import JsonCodec, is_json_type

__all__ = ["DECODERS", "RAW_TYPES", "codec_for_type", "codec_for_value", "decoder_for_type"]

#: Annotations that mean "the payload as it came": no codec.
RAW_TYPES: tuple[type, ...] = (bytes, str)

_JSON = JsonCodec()
_DATACLASS = DataclassCodec()
#: Codec per annotation already chosen (None: raw); annotations are hashable in practice.
_by_type: dict[object, Codec | None] = {}

#: Optional libraries: (module whose presence lets a type be one of theirs, the codec's
#: module, the codec's class name, the base class name in the library).
_OPTIONAL = (
    ("pydantic", "cloudqueue.codecs._pydantic", "PydanticCodec"),
    ("msgspec", "cloudqueue.codecs._msgspec", "MsgspecCodec"),
)
_loaded: dict[str, Codec] = {}


def _optional(module: str, codec_module: str, name: str) -> Codec | None:
    if module not in sys.modules:
        return None
    codec = _loaded.get(name)
    if codec is None:
        codec = _loaded[name] = getattr(importlib.import_module(codec_module), name)()
    return codec


def _cloudevent_codec(kind: object) -> Codec | None:
    """E-events' codec for a type from the ``cloudevents`` SDK (or cloudqueue's own
    CloudEvent type), imported only then."""
    module = getattr(kind, "__module__", "") or ""
    if not (module == "cloudevents" or module.startswith(("cloudevents.", "cloudqueue.cloudevents"))):
        return None
    codec = _loaded.get("cloudevents")
    if codec is None:
        events: Any = importlib.import_module("cloudqueue.cloudevents")
        codec = _loaded["cloudevents"] = events.CloudEventCodec()
    return codec


def _is_message_type(kind: object) -> bool:
    from .._received import AsyncReceivedMessage, ReceivedMessage  # _received imports this module

    return kind in (ReceivedMessage, AsyncReceivedMessage)


def _choose(kind: object) -> Codec | None:
    if kind in RAW_TYPES or _is_message_type(kind):
        return None
    for module, codec_module, name in _OPTIONAL:
        codec = _optional(module, codec_module, name)
        if codec is not None and codec.handles(kind):
            return codec
    if isinstance(kind, type):
        codec = _cloudevent_codec(kind)
        if codec is not None:
            return codec
    if _DATACLASS.handles(kind):
        return _DATACLASS
    if is_json_type(kind):
        return _JSON
    raise InvalidArgument(
        f"no codec decodes {describe(kind)}: annotate with a pydantic model, a msgspec Struct, "
        "a dataclass, a JSON type (dict, list, str, int, float, bool, None and their generics), "
        "a CloudEvent, or bytes/str/ReceivedMessage for the raw message"
    )


def codec_for_type(kind: object) -> Codec | None:
    """The codec that decodes into the annotation ``kind``; None for ``bytes``, ``str`` and
    the message classes (the raw payload). InvalidArgument when none can."""
    try:
        return _by_type[kind]
    except KeyError:
        codec = _by_type[kind] = _choose(kind)
        return codec
    except TypeError:  # an unhashable annotation: choose every time
        return _choose(kind)


def _body(body: bytes, attributes: Mapping[str, str]) -> bytes:
    return body


def _text(body: bytes, attributes: Mapping[str, str]) -> str:
    return body.decode()


#: Prepared decoders by annotation; filled by :func:`decoder_for_type`.
_prepared: dict[object, Decoder[Any] | None] = {}
#: ``DECODERS[kind]``: what :func:`decoder_for_type` returned for ``kind`` before, so that
#: decoding a message costs one dictionary lookup more than the library's own decoder.
#: KeyError before the first :func:`decoder_for_type` of ``kind``, TypeError for an
#: unhashable annotation: call :func:`decoder_for_type` then. A plain dict, not one that
#: fills itself on a miss (``__missing__``): subscripting a dict subclass misses the
#: interpreter's fast path for dicts, 6% of decoding a small msgspec Struct.
DECODERS: Mapping[object, Decoder[Any] | None] = _prepared


def decoder_for_type(kind: object) -> Decoder[Any] | None:
    """The prepared decoder for the annotation ``kind`` (see :meth:`Codec.decoder`), kept
    in :data:`DECODERS`: the body itself for ``bytes``, its text for ``str``, None for the
    message classes (the message is the payload). InvalidArgument when no codec reads
    ``kind``."""
    try:
        return _prepared[kind]
    except KeyError:
        decoder = _prepared[kind] = _prepare(kind)
        return decoder
    except TypeError:  # unhashable: nothing to keep it under
        return _prepare(kind)


def _prepare(kind: object) -> Decoder[Any] | None:
    if kind is bytes:
        return _body
    if kind is str:
        return _text
    codec = codec_for_type(kind)
    return None if codec is None else codec.decoder(kind)  # type: ignore[arg-type]


def codec_for_value(value: object) -> Codec:
    """The codec that encodes ``value``, by its type. InvalidArgument when none can."""
    kind = type(value)
    if dataclasses.is_dataclass(value):
        return _DATACLASS
    for module, codec_module, name in _OPTIONAL:
        codec = _optional(module, codec_module, name)
        if codec is not None and codec.handles(kind):
            return codec
    codec = _cloudevent_codec(kind)
    if codec is not None:
        return codec
    # JSON objects and arrays only: a bare None or number sent is far more often a
    # mistake (a body never built) than a message; a producer's codec= can still send them.
    if isinstance(value, dict | list):
        return _JSON
    raise InvalidArgument(
        f"body must be bytes or str, or a value a codec encodes (a pydantic model, msgspec "
        f"Struct, dataclass, dict or list for JSON, CloudEvent), not {kind.__qualname__}; "
        "or pass codec= to open_producer"
    )
