"""boto3 clients and queues, resolved lazily and cached.

Opening a producer or consumer never touches the network: the client is built, the
queue URL resolved (GetQueueUrl) and the queue's attributes read on first use, once,
and shared by every driver of the same queue in the process.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from cloudqueue.driver import Url
from cloudqueue.errors import InvalidArgument, register_secret, register_url_secrets, translate

from ._errors import CALL_ERRORS

if TYPE_CHECKING:
    from ._sdk import SqsSdk

__all__ = [
    "FIFO_SUFFIX", "Endpoint", "Queue", "QueueRegistry", "dead_letter_twin", "make_client",
    "sqs_call",
]

T = TypeVar("T")

# botocore's rule for region names: a host label, not all digits.
_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")
# 1-80 characters of letters, digits, hyphens and underscores; FIFO names end ".fifo".
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}(\.fifo)?|[A-Za-z0-9_-]{1,80}")
FIFO_SUFFIX = ".fifo"
#: The engine retries with backoff; botocore retrying underneath would multiply the
#: attempts and hide the requests from the portable layer's bookkeeping.
_BOTOCORE_RETRIES = {"mode": "standard", "total_max_attempts": 1}
# Enough for the engine's concurrent sends plus receives and settlements in flight.
_POOL_CONNECTIONS = 32
#: botocore checks every request's parameters against the service model before sending:
#: about a tenth of the client's CPU per PublishBatch of 10 (measured: 0.85 s -> 0.75 s
#: for 200 requests). Ours are built by the driver from messages the portable layer has
#: already checked against the limits, and the server checks them again, so the check
#: is switched off on the clients cloudqueue makes (a user's Config may switch it on).
_PARAMETER_VALIDATION = False


@contextmanager
def sqs_call(what: str) -> Iterator[None]:
    """Translate botocore errors raised inside the block (see :mod:`._errors`)."""
    with translate(CALL_ERRORS, what):
        yield


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Everything that selects one boto3 client: None means boto3's own default."""

    region: str | None
    endpoint_url: str | None
    profile: str | None

    @classmethod
    def from_url(cls, url: Url) -> Endpoint:
        endpoint = url.param("endpoint_url")
        if endpoint is not None and not _valid_endpoint(endpoint):
            raise InvalidArgument(
                f"endpoint_url must be http(s)://host[:port], not {endpoint!r:.100}"
            )
        for name in ("region", "profile"):
            if url.param(name) == "":
                raise InvalidArgument(f"the {name} parameter must not be empty")
        region = url.param("region")
        if region is not None and not _REGION.fullmatch(region):
            # botocore's own rule (a host label), checked here so that the error is ours.
            raise InvalidArgument(
                f"URL parameter region={region!r:.80} is not an AWS region name "
                "(letters, digits and hyphens, at most 63, e.g. us-east-1)"
            )
        profile = url.param("profile")
        if profile is not None and getattr(url.sdk, "session", None) is not None:
            raise InvalidArgument(
                "the URL's profile parameter and SqsSdk(session=...) both choose the "
                "credentials: leave profile out (make the session with that profile)"
            )
        return cls(region, endpoint, profile)


def _valid_endpoint(endpoint: str) -> bool:
    if not endpoint.isascii() or not re.fullmatch(r"https?://[^\s/?#]+/?", endpoint):
        return False
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018  # raises ValueError for a port out of range
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return bool(parts.hostname)


def queue_name(url: Url) -> str:
    name = url.host + url.path
    if not _QUEUE_NAME.fullmatch(name):
        raise InvalidArgument(
            f"SQS URLs name a queue: sqs://<queue-name>, where the name is 1-80 letters, digits, "
            f"'-' or '_' (FIFO queues end in '.fifo'), not {str(url)!r}"
        )
    return name


def dead_letter_twin(name: str) -> str:
    """``orders`` -> ``orders-dlq``; ``orders.fifo`` -> ``orders-dlq.fifo``."""
    if name.endswith(FIFO_SUFFIX):
        return name[: -len(FIFO_SUFFIX)] + "-dlq" + FIFO_SUFFIX
    return name + "-dlq"


def visibility_seconds(seconds: float) -> int:
    """A lease as SQS's whole-second VisibilityTimeout, rounded up (never shorter)."""
    return max(0, math.ceil(seconds - 1e-9))


class Queue:
    """One SQS queue as seen by this process: its URL and attributes, fetched once."""

    __slots__ = ("_attributes", "_lock", "_url", "client_of", "fifo", "name")

    def __init__(self, name: str, client_of: Callable[[], Any]) -> None:
        self.name = name
        self.fifo = name.endswith(FIFO_SUFFIX)
        self.client_of = client_of
        self._lock = threading.Lock()
        self._url: str | None = None
        self._attributes: dict[str, str] | None = None

    @property
    def client(self) -> Any:
        return self.client_of()

    def url(self) -> str:
        url = self._url
        if url is None:
            with self._lock:
                if self._url is None:
                    with sqs_call(f"finding SQS queue {self.name!r}"):
                        self._url = str(self.client.get_queue_url(QueueName=self.name)["QueueUrl"])
                url = self._url
        return url

    def attributes(self) -> dict[str, str]:
        attributes = self._attributes
        if attributes is None:
            url = self.url()
            with sqs_call(f"reading the attributes of SQS queue {self.name!r}"):
                answer = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            attributes = self._attributes = dict(answer.get("Attributes") or {})
        return attributes

    def forget(self) -> None:
        """Drop what was cached (after the queue was declared again or deleted)."""
        with self._lock:
            self._url = None
            self._attributes = None

    @property
    def visibility_timeout(self) -> float:
        return float(self.attributes().get("VisibilityTimeout", "30"))

    @property
    def content_based_dedup(self) -> bool:
        return self.attributes().get("ContentBasedDeduplication", "false").lower() == "true"

    def redrive_target(self) -> str | None:
        """The name of the queue that receives this one's dead letters, if any."""
        policy = self.attributes().get("RedrivePolicy")
        if not policy:
            return None
        arn = str(json.loads(policy).get("deadLetterTargetArn") or "")
        return arn.rsplit(":", 1)[-1] or None


class QueueRegistry:
    """One boto3 client per endpoint and service, one Queue per name: the provider's
    shared state for plain URLs, or a short-lived one per use of the user's
    :class:`~cloudqueue_sqs.SqsSdk` (closed by whoever made it).

    Clients it builds it closes; the user's ready clients it hands out and never closes.
    """

    def __init__(self, sdk: SqsSdk | None = None) -> None:
        self.sdk = sdk
        self._lock = threading.Lock()
        self._clients: dict[tuple[Endpoint, str], Any] = {}
        self._queues: dict[tuple[Endpoint, str], Queue] = {}

    def client(self, endpoint: Endpoint, service: str = "sqs") -> Any:
        """The boto3 client of ``service`` (``sqs``, ``sns``, ``sts``) for ``endpoint``."""
        ready = self.sdk.ready_client(service) if self.sdk is not None else None
        if ready is not None:
            return ready
        key = (endpoint, service)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    with sqs_call(f"creating the {service.upper()} client"):
                        client = self._clients[key] = make_client(endpoint, service, self.sdk)
        return client

    def queue(self, url: Url, name: str | None = None) -> Queue:
        if url.sdk is not self.sdk:
            # A Queue's client comes from this registry: another bundle's would be used
            # with the wrong credentials. The providers keep the two apart.
            raise AssertionError("a URL reached the registry of other SDK objects")
        endpoint = Endpoint.from_url(url)
        name = name or queue_name(url)
        key = (endpoint, name)
        queue = self._queues.get(key)
        if queue is None:
            with self._lock:
                queue = self._queues.setdefault(key, Queue(name, lambda: self.client(endpoint)))
        return queue

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            self._queues.clear()
        for client in clients:
            client.close()


def make_client(endpoint: Endpoint, service: str, sdk: SqsSdk | None = None) -> Any:
    """A boto3 client of ``service`` with cloudqueue's retry and pool settings (the
    user's ``config`` merged over them), made from the user's session or boto3's
    default one, its credentials and endpoint passwords registered as secrets."""
    import boto3
    from botocore.config import Config

    session = sdk.session if sdk is not None else None
    if session is None:
        session = boto3.Session(profile_name=endpoint.profile)
    credentials = session.get_credentials()
    if credentials is not None:
        # Keep the secret parts out of every error message we raise.
        frozen = credentials.get_frozen_credentials()
        for secret in (frozen.secret_key, frozen.token):
            if secret:
                register_secret(secret)
    # A user:password@ in an endpoint taken from the environment or the shared
    # configuration shows in botocore's errors and DEBUG logs: register it before any
    # request (the endpoint_url parameter's is registered when the URL is parsed).
    for name in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
        register_url_secrets(os.environ.get(name) or "")
    config = Config(
        retries=_BOTOCORE_RETRIES, max_pool_connections=_POOL_CONNECTIONS,
        parameter_validation=_PARAMETER_VALIDATION,
    )
    if sdk is not None and sdk.config is not None:
        config = config.merge(sdk.config)
    client = session.client(
        service, region_name=endpoint.region, endpoint_url=endpoint.endpoint_url, config=config
    )
    register_url_secrets(str(client.meta.endpoint_url or ""))
    return client
