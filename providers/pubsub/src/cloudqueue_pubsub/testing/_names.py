"""Resource names: ``projects/P/topics/T`` and ``projects/P/subscriptions/S``.

Pub/Sub documents topic and subscription IDs as 3-255 characters, starting with a letter,
made of letters, digits and ``- _ . ~ + %``, and not starting with ``goog``.
"""

from __future__ import annotations

import re

from ._errors import InvalidArgument

_RESOURCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-.:]*")

#: What the real service reports as the topic of a subscription whose topic was deleted.
DELETED_TOPIC = "_deleted-topic_"


def parse_project(name: str) -> str:
    """Return the project ID of ``projects/P``."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "projects" or not _PROJECT_ID.fullmatch(parts[1]):
        raise InvalidArgument(f"Invalid project name: {name!r} (expected projects/PROJECT_ID)")
    return parts[1]


def _parse(name: str, collection: str) -> tuple[str, str]:
    parts = name.split("/")
    if (
        len(parts) != 4
        or parts[0] != "projects"
        or parts[2] != collection
        or not _PROJECT_ID.fullmatch(parts[1])
    ):
        raise InvalidArgument(
            f"Invalid resource name: {name!r} (expected projects/PROJECT_ID/{collection}/ID)"
        )
    resource_id = parts[3]
    if not _RESOURCE_ID.fullmatch(resource_id) or resource_id.lower().startswith("goog"):
        raise InvalidArgument(
            f"Invalid {collection[:-1]} ID {resource_id!r}: 3-255 characters, starting with a "
            "letter, letters, digits and -_.~+% only, not starting with 'goog'"
        )
    return parts[1], resource_id


def parse_topic(name: str) -> tuple[str, str]:
    """Return (project, topic ID) of a valid topic name."""
    return _parse(name, "topics")


def parse_subscription(name: str) -> tuple[str, str]:
    """Return (project, subscription ID) of a valid subscription name."""
    return _parse(name, "subscriptions")


def parse_snapshot(name: str) -> tuple[str, str]:
    """Return (project, snapshot ID) of a valid snapshot name."""
    return _parse(name, "snapshots")
