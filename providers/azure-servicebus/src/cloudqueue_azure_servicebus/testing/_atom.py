"""ATOM/XML documents of the Service Bus administration API (the subset the SDK parses).

Element names and namespaces follow ``azure/servicebus/management/_generated/models``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from ._entities import NEVER, EntityProperties, Store
from ._entity_options import check_description
from ._namespace import Namespace, Queue, Subscription, Topic

ATOM_NS = "http://www.w3.org/2005/Atom"
SB_NS = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
COUNT_NS = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
_MAX_DURATION = "P10675199DT2H48M5.4775807S"  # TimeSpan.MaxValue, how the service says "never"
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)

# XML element name -> EntityProperties field, with the value kind.
_FIELDS: dict[str, tuple[str, str]] = {
    "LockDuration": ("lock_duration", "duration"),
    "MaxSizeInMegabytes": ("max_size_in_megabytes", "int"),
    "RequiresDuplicateDetection": ("requires_duplicate_detection", "bool"),
    "RequiresSession": ("requires_session", "bool"),
    "DefaultMessageTimeToLive": ("default_message_time_to_live", "duration"),
    "DeadLetteringOnMessageExpiration": ("dead_lettering_on_message_expiration", "bool"),
    "DuplicateDetectionHistoryTimeWindow": ("duplicate_detection_history_time_window", "duration"),
    "MaxDeliveryCount": ("max_delivery_count", "int"),
    "MaxMessageSizeInKilobytes": ("max_message_size_in_kilobytes", "int"),
    "ForwardTo": ("forward_to", "str"),
    "ForwardDeadLetteredMessagesTo": ("forward_dead_lettered_messages_to", "str"),
    "AutoDeleteOnIdle": ("auto_delete_on_idle", "duration"),
    "UserMetadata": ("user_metadata", "str"),
    "EnableBatchedOperations": ("enable_batched_operations", "bool"),
    "DeadLetteringOnFilterEvaluationExceptions": ("dead_lettering_on_filter_evaluation_exceptions", "bool"),
    "SupportOrdering": ("support_ordering", "bool"),
}
# Which of them each entity kind has (the rest of a request's elements are runtime values).
QUEUE_FIELDS = [
    "LockDuration", "MaxSizeInMegabytes", "RequiresDuplicateDetection", "RequiresSession",
    "DefaultMessageTimeToLive", "DeadLetteringOnMessageExpiration",
    "DuplicateDetectionHistoryTimeWindow", "MaxDeliveryCount", "MaxMessageSizeInKilobytes",
    "ForwardTo", "ForwardDeadLetteredMessagesTo", "AutoDeleteOnIdle", "UserMetadata",
    "EnableBatchedOperations",
]
TOPIC_FIELDS = [
    "DefaultMessageTimeToLive", "MaxSizeInMegabytes", "RequiresDuplicateDetection",
    "DuplicateDetectionHistoryTimeWindow", "MaxMessageSizeInKilobytes", "AutoDeleteOnIdle",
    "UserMetadata", "EnableBatchedOperations", "SupportOrdering",
]
SUBSCRIPTION_FIELDS = [
    "LockDuration", "RequiresSession", "DefaultMessageTimeToLive",
    "DeadLetteringOnMessageExpiration", "MaxDeliveryCount", "ForwardTo",
    "ForwardDeadLetteredMessagesTo", "AutoDeleteOnIdle", "UserMetadata", "EnableBatchedOperations",
    "DeadLetteringOnFilterEvaluationExceptions",
]
_KIND_FIELDS = {
    "QueueDescription": QUEUE_FIELDS,
    "TopicDescription": TOPIC_FIELDS,
    "SubscriptionDescription": SUBSCRIPTION_FIELDS,
}


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"bad ISO 8601 duration {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def format_duration(seconds: float) -> str:
    if seconds >= NEVER:
        return _MAX_DURATION
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    out = "P" + (f"{days}D" if days else "") + "T"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or frac or out.endswith("T"):
        out += f"{secs + frac:.7f}".rstrip("0").rstrip(".") + "S"
    return out


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_description(body: bytes) -> tuple[str, dict[str, Any]]:
    """Return (description kind, EntityProperties fields) from a PUT body.

    Raises ``OptionError`` for an option the broker refuses (see ``_entity_options``).
    """
    root = ElementTree.fromstring(body)
    desc: ElementTree.Element | None = None
    for element in root.iter():
        if element.tag.endswith("Description") and element.tag.startswith("{" + SB_NS):
            desc = element
            break
    if desc is None:
        raise ValueError("no entity description in request body")
    kind = desc.tag.split("}", 1)[1]
    check_description(desc)
    known = _KIND_FIELDS.get(kind, [])
    values: dict[str, Any] = {}
    for child in desc:
        local = child.tag.split("}", 1)[-1]
        if local not in known or child.text is None:
            continue
        attr, vtype = _FIELDS[local]
        text = child.text.strip()
        if vtype == "str":
            values[attr] = child.text
        elif vtype == "bool":
            values[attr] = text.lower() == "true"
        elif vtype == "int":
            values[attr] = int(text)
        else:
            values[attr] = parse_duration(text)
    return kind, values


def _fields_xml(props: EntityProperties, names: list[str]) -> str:
    out = []
    for name in names:
        attr, vtype = _FIELDS[name]
        value = getattr(props, attr)
        if vtype == "str":
            if value:  # absent when unset, as the service answers
                out.append(f"<{name}>{escape(value)}</{name}>")
            continue
        if vtype == "bool":
            text = "true" if value else "false"
        elif vtype == "int":
            text = str(value)
        else:
            text = format_duration(value)
        out.append(f"<{name}>{text}</{name}>")
    return "".join(out)


def _counts_xml(
    active: int, scheduled: int, dead: int, *, transfer: int = 0, transfer_dead: int = 0
) -> str:
    # Transfer counts are 0: the broker forwards at once (no transfer queue builds up), and
    # a message it cannot forward goes to the entity's dead-letter subqueue.
    return (
        f'<CountDetails xmlns:d2p1="{COUNT_NS}">'
        f"<d2p1:ActiveMessageCount>{active}</d2p1:ActiveMessageCount>"
        f"<d2p1:DeadLetterMessageCount>{dead}</d2p1:DeadLetterMessageCount>"
        f"<d2p1:ScheduledMessageCount>{scheduled}</d2p1:ScheduledMessageCount>"
        f"<d2p1:TransferMessageCount>{transfer}</d2p1:TransferMessageCount>"
        f"<d2p1:TransferDeadLetterMessageCount>{transfer_dead}</d2p1:TransferDeadLetterMessageCount>"
        "</CountDetails>"
    )


def _entity_counts(store: Store, *, scheduled_here: bool) -> tuple[int, str]:
    """``MessageCount`` (everything the entity holds: active, scheduled, dead-lettered)
    and ``CountDetails`` of a queue or subscription. A subscription reports no scheduled
    messages: the service keeps them in the topic until they are due."""
    counts = store.counts()
    scheduled = counts["scheduled"] if scheduled_here else 0
    total = counts["active"] + scheduled + counts["dead_letter"]
    return total, _counts_xml(counts["active"], scheduled, counts["dead_letter"])


def _times_xml(created: datetime, updated: datetime) -> str:
    return (
        f"<CreatedAt>{_iso(created)}</CreatedAt><UpdatedAt>{_iso(updated)}</UpdatedAt>"
        f"<AccessedAt>{_iso(updated)}</AccessedAt>"
    )


def queue_description(queue: Queue) -> str:
    total, counts = _entity_counts(queue.store, scheduled_here=True)
    return (
        f'<QueueDescription xmlns="{SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        + _fields_xml(queue.props, QUEUE_FIELDS)
        + f"<SizeInBytes>0</SizeInBytes><MessageCount>{total}</MessageCount>"
        + "<IsAnonymousAccessible>false</IsAnonymousAccessible><Status>Active</Status>"
        + _times_xml(queue.created, queue.updated)
        + "<SupportOrdering>true</SupportOrdering>" + counts
        + "<EnablePartitioning>false</EnablePartitioning>"
        + "<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>"
        + "<EnableExpress>false</EnableExpress>"
        + "</QueueDescription>"
    )


def topic_description(topic: Topic) -> str:
    stores = [sub.store for sub in topic.subscriptions.values()]
    # A scheduled message waits once in the topic, however many subscriptions it is for
    # (the broker keeps a copy per subscription, with the sequence number the topic gave it).
    scheduled = set().union(*(store.scheduled_sequence_numbers() for store in stores))
    per_store = [store.counts() for store in stores]
    counts = _counts_xml(
        sum(c["active"] for c in per_store), len(scheduled), sum(c["dead_letter"] for c in per_store)
    )
    return (
        f'<TopicDescription xmlns="{SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        + _fields_xml(topic.props, TOPIC_FIELDS)
        + "<SizeInBytes>0</SizeInBytes>"
        + "<FilteringMessagesBeforePublishing>false</FilteringMessagesBeforePublishing>"
        + "<IsAnonymousAccessible>false</IsAnonymousAccessible><Status>Active</Status>"
        + _times_xml(topic.created, topic.updated) + counts
        + "<EnablePartitioning>false</EnablePartitioning>"
        + f"<SubscriptionCount>{len(topic.subscriptions)}</SubscriptionCount>"
        + "<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>"
        + "<EnableExpress>false</EnableExpress>"
        + "</TopicDescription>"
    )


def subscription_description(sub: Subscription) -> str:
    total, counts = _entity_counts(sub.store, scheduled_here=False)
    return (
        f'<SubscriptionDescription xmlns="{SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        + _fields_xml(sub.store.props, SUBSCRIPTION_FIELDS)
        + f"<MessageCount>{total}</MessageCount><Status>Active</Status>"
        + _times_xml(sub.created, sub.updated) + counts
        + "<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>"
        + "</SubscriptionDescription>"
    )


def entry(base_url: str, path: str, title: str, description: str, updated: datetime) -> str:
    url = escape(f"{base_url}/{path}?api-version=2021-05")
    return (
        f'<entry xmlns="{ATOM_NS}"><id>{url}</id><title type="text">{escape(title)}</title>'
        f"<published>{_iso(updated)}</published><updated>{_iso(updated)}</updated>"
        f"<author><name>local</name></author>"
        f'<link rel="self" href="{url}"/>'
        f'<content type="application/xml">{description}</content></entry>'
    )


def feed(base_url: str, path: str, entries: list[str], next_href: str | None = None) -> str:
    now = _iso(datetime.now(UTC))
    url = escape(f"{base_url}/{path}?api-version=2021-05")
    # The SDK takes the second link as the next page's address.
    next_link = f'<link rel="next" href="{escape(next_href)}"/>' if next_href else ""
    return (
        f'<feed xmlns="{ATOM_NS}"><title type="text">{escape(path)}</title>'
        f"<id>{url}</id><updated>{now}</updated>"
        f'<link rel="self" href="{url}"/>' + next_link + "".join(entries) + "</feed>"
    )


def namespace_entry(base_url: str, name: str, namespace: Namespace) -> str:
    """``GET /$namespaceinfo``: what ``get_namespace_properties`` parses (``NamespaceInfo``)."""
    created = _iso(namespace.created)
    # Messaging units exist only on Premium namespaces; the service omits them on Standard.
    units = "<MessagingUnits>1</MessagingUnits>" if namespace.sku == "Premium" else ""
    info = (
        f'<NamespaceInfo xmlns="{SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"<CreatedTime>{created}</CreatedTime><MessagingSKU>{namespace.sku}</MessagingSKU>{units}"
        f"<ModifiedTime>{created}</ModifiedTime><Name>{escape(name)}</Name>"
        "<NamespaceType>Messaging</NamespaceType></NamespaceInfo>"
    )
    return entry(base_url, "$namespaceinfo", name, info, namespace.created)


def error(status: int, detail: str) -> str:
    return f"<Error><Code>{status}</Code><Detail>{escape(detail)}</Detail></Error>"
