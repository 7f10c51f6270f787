"""Wrapping a provider's drivers when offloading is configured (the shell's one seam)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._config import Offload
from ._consuming import OffloadingSubscription, PayloadResolver
from ._producing import OffloadingTopic
from ._store import open_store

if TYPE_CHECKING:
    from .._url import Url
    from ..driver import Provider, SubscriptionDriver, TopicDriver

__all__ = ["open_subscription", "open_topic"]


def open_topic(provider: Provider, url: Url, offload: Offload | None) -> TopicDriver:
    """The provider's topic driver, offloading large bodies when ``offload`` is set."""
    if offload is None:
        return provider.open_topic(url)
    store = open_store(offload.location)
    try:
        driver = provider.open_topic(url)
    except BaseException:
        store.close()
        raise
    aws = provider.aws_extended_payloads and store.scheme == "s3"
    return OffloadingTopic(driver, store, offload, aws_format=aws)


def open_subscription(
    provider: Provider, url: Url, offload: Offload | None
) -> tuple[SubscriptionDriver, PayloadResolver]:
    """The provider's subscription driver, and the resolver of the pointers it delivers."""
    aws = provider.aws_extended_payloads
    if offload is None:
        return provider.open_subscription(url), PayloadResolver(None, aws_format=aws)
    store = open_store(offload.location)
    try:
        driver = provider.open_subscription(url)
    except BaseException:
        store.close()
        raise
    resolver = PayloadResolver(store, aws_format=aws, delete_after_ack=offload.delete_after_ack)
    return OffloadingSubscription(driver, store), resolver
