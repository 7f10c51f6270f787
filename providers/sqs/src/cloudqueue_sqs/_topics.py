"""SNS topics: names, ARNs and attributes, resolved lazily and cached.

A topic is addressed by its ARN, ``arn:<partition>:sns:<region>:<account>:<name>``. The
partition and region are the SNS client's; the account is the URL's ``account``
parameter or, by default, the caller's own (STS ``GetCallerIdentity``, which needs no
permission), read once per endpoint. Opening a producer touches no network; the first
publish does.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from cloudqueue.driver import Url
from cloudqueue.errors import InvalidArgument

from ._queues import FIFO_SUFFIX, Endpoint, QueueRegistry, sqs_call

__all__ = ["Topic", "TopicRegistry", "topic_name"]

# 1-256 letters, digits, hyphens and underscores; FIFO topics end ".fifo" (within the 256).
_TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,251}(\.fifo)?|[A-Za-z0-9_-]{1,256}")
_ACCOUNT = re.compile(r"[0-9]{12}")


def topic_name(url: Url) -> str:
    name = url.host + url.path
    if not _TOPIC_NAME.fullmatch(name):
        raise InvalidArgument(
            "SNS URLs name a topic: sns://<topic>[?subscription=<name>], where the topic is "
            "1-256 letters, digits, '-' or '_' (FIFO topics end in '.fifo'), "
            f"not {str(url)!r:.400}"
        )
    return name


def _account(url: Url) -> str | None:
    account = url.param("account")
    if account is not None and not _ACCOUNT.fullmatch(account):
        raise InvalidArgument(
            f"URL parameter account={account!r:.40} is not an AWS account id (12 digits)"
        )
    return account


class Topic:
    """One SNS topic as seen by this process: its ARN and attributes, fetched once."""

    __slots__ = ("_account", "_arn", "_attributes", "_lock", "_registry", "endpoint", "fifo", "name")

    def __init__(
        self, name: str, endpoint: Endpoint, account: str | None, registry: TopicRegistry
    ) -> None:
        self.name = name
        self.fifo = name.endswith(FIFO_SUFFIX)
        self.endpoint = endpoint
        self._account = account
        self._registry = registry
        self._lock = threading.Lock()
        self._arn: str | None = None
        self._attributes: dict[str, str] | None = None

    @property
    def client(self) -> Any:
        return self._registry.queues.client(self.endpoint, "sns")

    def arn(self) -> str:
        arn = self._arn
        if arn is None:
            client = self.client
            account = self._account or self._registry.caller_account(self.endpoint)
            arn = self._arn = (
                f"arn:{client.meta.partition}:sns:{client.meta.region_name}:{account}:{self.name}"
            )
        return arn

    def attributes(self) -> dict[str, str]:
        """The topic's attributes (NotFound when it does not exist), read once."""
        attributes = self._attributes
        if attributes is None:
            arn = self.arn()
            with sqs_call(f"reading the attributes of SNS topic {self.name!r}"):
                answer = self.client.get_topic_attributes(TopicArn=arn)
            attributes = self._attributes = dict(answer.get("Attributes") or {})
        return attributes

    def forget(self) -> None:
        """Drop the cached attributes (after the topic was declared again or deleted)."""
        with self._lock:
            self._attributes = None

    @property
    def content_based_dedup(self) -> bool:
        return self.attributes().get("ContentBasedDeduplication", "false").lower() == "true"


class TopicRegistry:
    """SNS's share of the provider state: one Topic per endpoint, account and name, the
    caller's account per endpoint; the clients are the :class:`QueueRegistry`'s."""

    def __init__(self, queues: QueueRegistry) -> None:
        self.queues = queues
        self._lock = threading.Lock()
        self._topics: dict[tuple[Endpoint, str | None, str], Topic] = {}
        self._accounts: dict[Endpoint, str] = {}

    def topic(self, url: Url) -> Topic:
        endpoint = Endpoint.from_url(url)
        name = topic_name(url)
        account = _account(url)
        sdk = self.queues.sdk
        needs_account = sdk is not None and sdk.sns_client is not None and sdk.session is None
        if account is None and needs_account:
            # The ARN needs the client's account, and a ready client does not say whose
            # credentials it holds: STS through boto3's default chain could name another.
            raise InvalidArgument(
                "with SqsSdk(sns_client=...) and no session, the topic's AWS account is "
                "unknown: add account=<12 digits> to the sns:// URL, or pass the session "
                "the client was made from as SqsSdk(session=...) too"
            )
        key = (endpoint, account, name)
        topic = self._topics.get(key)
        if topic is None:
            with self._lock:
                topic = self._topics.setdefault(key, Topic(name, endpoint, account, self))
        return topic

    def caller_account(self, endpoint: Endpoint) -> str:
        account = self._accounts.get(endpoint)
        if account is None:
            sts = self.queues.client(endpoint, "sts")
            with sqs_call("finding the caller's AWS account (STS GetCallerIdentity)"):
                account = str(sts.get_caller_identity()["Account"])
            self._accounts[endpoint] = account
        return account

    def close(self) -> None:
        with self._lock:
            self._topics.clear()
            self._accounts.clear()

    def close_all(self) -> None:
        """Close this registry and its queues' (a registry made for one use of the
        user's SqsSdk; the shared one's queues belong to the SQS provider)."""
        self.close()
        self.queues.close()
