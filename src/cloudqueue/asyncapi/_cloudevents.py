"""The payload of a handler that takes a CloudEvent: the event in structured mode.

Written from the CloudEvents 1.0 specification (core attributes) and its JSON event
format: ``specversion``, ``id``, ``source`` and ``type`` are required; ``data`` holds
JSON data and ``data_base64`` binary data; extension attributes are lower-case
alphanumeric names of at most 20 characters. In binary mode the same attributes travel
as message attributes (``ce-*`` on Pub/Sub, ``cloudEvents_*`` on AMQP), which AsyncAPI's
payload cannot express; docs/asyncapi.md says so.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLOUDEVENT_CONTENT_TYPE", "CLOUDEVENT_SCHEMA", "is_cloudevent_type"]

CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"

_STRING = {"type": "string", "minLength": 1}
_EXTENSION_VALUE = {"type": ["string", "integer", "boolean"]}

CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "title": "CloudEvent",
    "description": "A CloudEvents 1.0 event in the JSON event format (structured mode).",
    "type": "object",
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": _STRING,
        "source": {**_STRING, "format": "uri-reference"},
        "type": _STRING,
        "datacontenttype": _STRING,
        "dataschema": {**_STRING, "format": "uri"},
        "subject": _STRING,
        "time": {"type": "string", "format": "date-time"},
        "data": {},
        "data_base64": {"type": "string", "contentEncoding": "base64"},
    },
    "required": ["specversion", "id", "source", "type"],
    # Extension attributes: any other lower-case alphanumeric name, with a scalar value.
    "propertyNames": {"pattern": "^(data_base64|[a-z0-9]{1,20})$"},
    "additionalProperties": _EXTENSION_VALUE,
}


def is_cloudevent_type(kind: object) -> bool:
    """Whether ``kind`` is a CloudEvent class of the ``cloudevents`` SDK (or ours)."""
    if not isinstance(kind, type):
        return False
    return any(
        base.__name__ == "CloudEvent"
        and base.__module__.split(".")[0] in ("cloudevents", "cloudqueue")
        for base in kind.__mro__
    )
