"""Wrapping a provider's drivers when offloading is configured (the shell's one seam)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ._config import Offload
from ._consuming import OffloadingSubscription, PayloadResolver
from ._producing import OffloadingTopic
from ._store import PayloadStore, open_store

if TYPE_CHECKING:
    from .._url import Url
    from ..driver import Provider, SubscriptionDriver, TopicDriver

__all__ = ["open_subscription", "open_topic"]

_Driver = TypeVar("_Driver")


def open_topic(provider: Provider, url: Url, offload: Offload | None) -> TopicDriver:
    """The provider's topic driver, offloading large bodies when ``offload`` is set."""
    if offload is None:
        return provider.open_topic(url)
    store, driver = _with_store(offload, lambda: provider.open_topic(url))
    aws = provider.aws_extended_payloads and store.scheme == "s3"
    return OffloadingTopic(driver, store, offload, aws_format=aws)


def open_subscription(
    provider: Provider, url: Url, offload: Offload | None
) -> tuple[SubscriptionDriver, PayloadResolver]:
    """The provider's subscription driver, and the resolver of the pointers it delivers."""
    aws = provider.aws_extended_payloads
    if offload is None:
        return provider.open_subscription(url), PayloadResolver(None, aws_format=aws)
    store, driver = _with_store(offload, lambda: provider.open_subscription(url))
    resolver = PayloadResolver(store, aws_format=aws, delete_after_ack=offload.delete_after_ack)
    return OffloadingSubscription(driver, store), resolver


def _with_store(offload: Offload, open_driver: Callable[[], _Driver]) -> tuple[PayloadStore, _Driver]:
    """The store first (a bad location fails before any connection), then the driver;
    the store is closed again when the driver cannot be opened."""
    store = open_store(offload.location)
    try:
        return store, open_driver()
    except BaseException:
        store.close()
        raise
