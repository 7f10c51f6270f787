"""What a ``pubsub://`` URL names: a project, a topic and maybe a subscription."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudqueue.driver import Url
from cloudqueue.errors import InvalidArgument

__all__ = ["DEAD_LETTER_SUFFIX", "Names", "names_of"]

#: The dead-letter topic of ``orders`` is ``orders-dead-letter``, and so is its subscription.
DEAD_LETTER_SUFFIX = "-dead-letter"

# Google's rules for topic and subscription ids: 3..255 characters, a letter first, then
# letters, digits and - _ . ~ + %; never starting with "goog".
_RESOURCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_PROJECT_ID = re.compile(r"([a-z][a-z0-9.\-]*:)?[a-z][a-z0-9\-]{0,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Names:
    project: str
    topic_id: str
    subscription_id: str | None

    @property
    def topic(self) -> str:
        return f"projects/{self.project}/topics/{self.topic_id}"

    @property
    def subscription(self) -> str | None:
        if self.subscription_id is None:
            return None
        return f"projects/{self.project}/subscriptions/{self.subscription_id}"

    def required_subscription(self, url: Url) -> str:
        """The subscription path, or a clear error for a consumer URL without one."""
        if self.subscription is None:
            raise InvalidArgument(
                f"a Pub/Sub consumer reads a subscription: pubsub://<project>/<topic>"
                f"?subscription=<name>, not {url}"
            )
        return self.subscription

    @property
    def dead_letter(self) -> Names:
        """The dead-letter topic, and its subscription of the same name."""
        dead = self.topic_id + DEAD_LETTER_SUFFIX
        return Names(self.project, dead, dead)

    def describe(self) -> str:
        where = f"Pub/Sub topic {self.topic}"
        if self.subscription_id is not None:
            where += f" subscription {self.subscription_id!r}"
        return where


def names_of(url: Url) -> Names:
    """Check ``pubsub://<project>/<topic>[?subscription=<name>]`` and split it."""
    parts = url.segments
    if len(parts) != 2 or url.path.endswith("/"):
        raise InvalidArgument(
            f"Pub/Sub URLs look like pubsub://<project>/<topic>[?subscription=<name>], not {url}"
        )
    project, topic = parts
    if not _PROJECT_ID.fullmatch(project):
        raise InvalidArgument(
            f"{project!r} is not a Google Cloud project id (lower-case letters, digits and "
            f"hyphens, a letter first; the legacy domain:project form is accepted)"
        )
    subscription = url.subscription
    for kind, value in (("topic", topic), ("subscription", subscription)):
        if value is None:
            continue
        if not _RESOURCE_ID.fullmatch(value) or value.lower().startswith("goog"):
            raise InvalidArgument(
                f"{value!r} is not a valid Pub/Sub {kind} id: 3..255 characters, a letter first, "
                f"then letters, digits or - _ . ~ + %, not starting with 'goog'"
            )
    return Names(project, topic, subscription)
