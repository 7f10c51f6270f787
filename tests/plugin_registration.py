"""A test's own provider, registered with cloudqueue's plugin manager for a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cloudqueue
from cloudqueue.driver import Provider


class _OneProviderPlugin:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    @cloudqueue.hookimpl
    def cloudqueue_providers(self) -> list[Provider]:
        return [self.provider]


@contextlib.contextmanager
def registered(provider: Provider, name: str) -> Iterator[None]:
    """``provider`` answers its scheme inside the block; unregistered after, even on error."""
    plugin = _OneProviderPlugin(provider)
    cloudqueue.plugin_manager().register(plugin, name=name)
    try:
        yield
    finally:
        cloudqueue.plugin_manager().unregister(plugin)
