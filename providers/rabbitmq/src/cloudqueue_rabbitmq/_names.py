"""What a URL names: the broker to connect to, and a queue or a topic's subscription.

``amqp[s]://user:password@host:port/<vhost>?queue=<queue>`` names a queue;
``...?topic=<exchange>[&subscription=<name>]`` a topic (a fanout exchange) and one of
its subscriptions, the queue ``<exchange>.<name>`` bound to it. The path is the virtual
host as in RabbitMQ's own URI spec: empty or ``/`` is the default vhost ``/``, and
``%2F`` spells a ``/`` inside a name. ``lease`` (seconds) is the consumer's lease.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import unquote

from cloudqueue.driver import Url
from cloudqueue.errors import InvalidArgument

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "DEFAULT_LEASE",
    "MAX_LEASE",
    "MAX_NAME_BYTES",
    "Broker",
    "Names",
    "names_of",
]

#: AMQP 0.9.1 short strings (queue and exchange names) hold at most 255 bytes.
MAX_NAME_BYTES = 255
DEAD_LETTER_SUFFIX = ".dead-letter"
#: A consumer's lease when the URL does not say (the clouds' common default).
DEFAULT_LEASE = 30.0
#: RabbitMQ's default ``consumer_timeout`` (30 min): the broker closes a channel that holds
#: a message unacknowledged longer, so no lease may outlive it.
MAX_LEASE = 1800.0


@dataclass(frozen=True, slots=True)
class Broker:
    """Where to connect. ``repr`` never shows the password."""

    host: str
    port: int
    vhost: str
    username: str
    password: str
    tls: bool

    def __repr__(self) -> str:
        return f"Broker({self.host}:{self.port}, vhost={self.vhost!r}, user={self.username!r})"


@dataclass(frozen=True, slots=True)
class Names:
    broker: Broker
    #: The queue a consumer reads (None for a topic URL without a subscription).
    queue: str | None
    #: The fanout exchange of a topic, or None for a plain queue.
    exchange: str | None
    lease: float

    @property
    def dead_letter_queue(self) -> str:
        return self.required_queue() + DEAD_LETTER_SUFFIX

    def required_queue(self) -> str:
        if self.queue is None:
            raise InvalidArgument(
                f"a consumer of topic {self.exchange!r} needs ?subscription=<name> in its URL"
            )
        return self.queue

    @property
    def where(self) -> str:
        """How errors name the destination: never the credentials."""
        if self.exchange is None:
            return f"queue {self.queue!r}"
        return f"topic {self.exchange!r}" + (f" queue {self.queue!r}" if self.queue else "")


def _checked_name(kind: str, value: str) -> str:
    if not value:
        raise InvalidArgument(f"the {kind} name in a RabbitMQ URL may not be empty")
    size = len(value.encode())
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(
            f"{kind} name is {size} bytes; RabbitMQ names hold at most {MAX_NAME_BYTES}"
        )
    if value.startswith("amq."):
        raise InvalidArgument(f"{kind} name {value!r}: names starting 'amq.' are reserved")
    return value


def _broker(url: Url) -> Broker:
    tls = url.scheme == "amqps"
    host, _, port_text = url.host.rpartition(":") if ":" in url.host else (url.host, "", "")
    if not host:
        raise InvalidArgument("a RabbitMQ URL needs a host: amqp://user:password@host:5672/")
    port = int(port_text) if port_text else (5671 if tls else 5672)
    vhost = unquote(url.path[1:]) if url.path not in ("", "/") else "/"
    return Broker(
        host=host.strip("[]"), port=port, vhost=vhost,
        username=url.username if url.username is not None else "guest",
        password=url.password if url.password is not None else "guest",
        tls=tls,
    )


def _lease(url: Url) -> float:
    lease = url.float_param("lease", DEFAULT_LEASE)
    if not math.isfinite(lease) or not 0 < lease <= MAX_LEASE:
        raise InvalidArgument(
            f"lease={lease} is out of range: RabbitMQ leases are 0 < lease <= {MAX_LEASE:g} "
            "seconds (the broker's consumer_timeout)"
        )
    return lease


def names_of(url: Url) -> Names:
    queue = url.param("queue")
    topic = url.param("topic")
    subscription = url.subscription
    if (queue is None) == (topic is None):
        raise InvalidArgument(
            "a RabbitMQ URL names exactly one of ?queue=<name> or ?topic=<exchange>"
        )
    if queue is not None:
        if subscription is not None:
            raise InvalidArgument("subscription= goes with topic=, not with queue=")
        return Names(_broker(url), _checked_name("queue", queue), None, _lease(url))
    assert topic is not None
    exchange = _checked_name("topic", topic)
    consumer_queue = None
    if subscription is not None:
        consumer_queue = _checked_name("subscription queue", f"{exchange}.{subscription}")
    return Names(_broker(url), consumer_queue, exchange, _lease(url))
