"""Hook specifications for provider plugins (pluggy).

A provider plugin is a module (or object) with functions marked
``@cloudqueue.hookimpl``, registered under the ``cloudqueue.providers`` entry
point group of its distribution::

    # pyproject.toml of cloudqueue-example
    [project.entry-points."cloudqueue.providers"]
    example = "cloudqueue_example.provider"

    # cloudqueue_example/provider.py
    import cloudqueue

    @cloudqueue.hookimpl
    def cloudqueue_providers():
        return [ExampleProvider()]

The built-in ``memory`` and ``sqlite`` providers register through the same
entry point group. Set ``CLOUDQUEUE_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the
built-in providers (plugins can then be registered by hand with
``cloudqueue.plugin_manager().register(module)``).

Hooks are called with keyword arguments, so a spec can gain arguments later
without breaking existing plugins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .driver import Provider
    from .offload import PayloadStore

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "cloudqueue"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def cloudqueue_providers() -> Sequence[Provider]:
    """Return the providers this plugin contributes.

    Each :class:`~cloudqueue.driver.Provider` names the URL schemes it answers
    (``Provider.schemes``) and the distribution that ships it. Two plugins
    claiming the same scheme is an error reported when the registry loads,
    naming both distributions. Called once per process, lazily, the first time
    a URL is opened; keep it cheap: import SDKs inside the provider's methods,
    not at module import time.
    """
    raise NotImplementedError


@hookspec
def cloudqueue_payload_stores() -> Sequence[type[PayloadStore]]:
    """Return the payload store classes this plugin contributes (claim-check offloading).

    Each :class:`~cloudqueue.offload.PayloadStore` subclass names the location
    scheme it answers in ``scheme`` (``"s3"`` for ``s3://bucket/prefix``) and is
    opened with ``cls.open(location)`` when a producer or consumer is configured
    with ``offload=<location>``. The built-in ``file``, ``s3``, ``gs`` and ``az``
    stores register through this hook too; two classes claiming one scheme is an
    error naming both. Called lazily, the first time a location is opened; keep
    the module cheap to import: import SDKs inside the store's methods.
    """
    raise NotImplementedError
