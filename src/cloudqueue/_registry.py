"""Finding the provider for a URL: pluggy plugins loaded from entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs
from ._url import Url, parse_url
from .errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from ._sdk import SdkObjects
    from .driver import Provider

__all__ = ["ENTRY_POINT_GROUP", "plugin_manager", "provider_for", "providers", "resolve"]

ENTRY_POINT_GROUP = "cloudqueue.providers"
AUTOLOAD_SWITCH = "CLOUDQUEUE_DISABLE_PLUGIN_AUTOLOAD"

# Built-in plugins are registered under the same names as their entry points,
# so they load even with autoload off and are never loaded twice.
_BUILTIN_PLUGINS = {
    "memory": "cloudqueue.providers.memory",
    "sqlite": "cloudqueue.providers.sqlite",
    "payload-stores": "cloudqueue.offload._builtin",
}

# Where to find providers for well-known schemes that are not installed.
_KNOWN_DISTRIBUTIONS = {
    "sqs": "cloudqueue-sqs (pip install 'cloudqueue[sqs]')",
    "pubsub": "cloudqueue-pubsub (pip install 'cloudqueue[pubsub]')",
    "azuresb": "cloudqueue-azure-servicebus (pip install 'cloudqueue[azure-servicebus]')",
    "amqp": "cloudqueue-rabbitmq (pip install 'cloudqueue[rabbitmq]')",
    "amqps": "cloudqueue-rabbitmq (pip install 'cloudqueue[rabbitmq]')",
}

log = logging.getLogger("cloudqueue")
_lock = threading.Lock()
_broken: dict[str, str] = {}  # entry point name -> why it failed to load
_manager: pluggy.PluginManager | None = None
_by_scheme: dict[str, Provider] | None = None
_built_for: frozenset[object] = frozenset()  # the plugins _by_scheme was built from


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-in and installed plugins loaded."""
    global _manager
    with _lock:
        if _manager is None:
            manager = pluggy.PluginManager(hookspecs.PROJECT)
            manager.add_hookspecs(hookspecs)
            for name, module in _BUILTIN_PLUGINS.items():
                manager.register(importlib.import_module(module), name=name)
            if not os.environ.get(AUTOLOAD_SWITCH):
                _load_entry_points(manager)
            _manager = manager
        return _manager


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    """Load installed plugins one by one: a plugin that fails to import is
    reported (and named when its scheme is asked for) instead of breaking
    every other provider."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:
            distribution = entry_point.dist.name if entry_point.dist else "?"
            _broken[entry_point.name] = f"{distribution}: {type(error).__name__}: {error}"
            log.warning("cloudqueue plugin %r (%s) failed to load: %s", entry_point.name,
                        distribution, error)
            continue
        manager.register(plugin, name=entry_point.name)


def providers() -> dict[str, Provider]:
    """Every installed provider, by URL scheme (rebuilt when plugins change)."""
    global _by_scheme, _built_for
    manager = plugin_manager()
    registered = frozenset(manager.get_plugins())
    if _by_scheme is not None and registered == _built_for:
        return _by_scheme
    found: dict[str, Provider] = {}
    for contributed in manager.hook.cloudqueue_providers():
        for provider in contributed:
            for scheme in provider.schemes:
                other = found.get(scheme)
                if other is not None and other is not provider:
                    raise InvalidArgument(
                        f"two plugins claim the URL scheme {scheme!r}: "
                        f"{other.distribution} and {provider.distribution}"
                    )
                found[scheme] = provider
    with _lock:
        _by_scheme = found
        _built_for = registered
    return found


def reset() -> None:
    """Forget loaded plugins (tests register plugins by hand after this)."""
    global _manager, _by_scheme
    with _lock:
        _manager = None
        _by_scheme = None
        _broken.clear()


def provider_for(scheme: str) -> Provider:
    installed = providers()
    provider = installed.get(scheme)
    if provider is not None:
        return provider
    names = ", ".join(sorted(installed)) or "none"
    hint = _KNOWN_DISTRIBUTIONS.get(scheme)
    where = (
        f"; install {hint}"
        if hint
        else "; a third-party plugin registering it under the "
        f"{ENTRY_POINT_GROUP!r} entry point group would add it"
    )
    if _broken:
        where += "; plugins that failed to load: " + "; ".join(
            f"{name} ({why})" for name, why in sorted(_broken.items())
        )
    raise NotFound(f"no provider for URL scheme {scheme!r} (installed: {names}){where}")


def resolve(text: str | Url, sdk: SdkObjects | None = None) -> tuple[Provider, Url]:
    """The provider for a URL, and the URL parsed with the provider's rules,
    carrying ``sdk`` (the user's SDK objects) once checked against the provider's
    ``sdk_type``."""
    if isinstance(text, Url):
        provider = provider_for(text.scheme)
        return provider, text if sdk is None else _with_sdk(provider, text, sdk)
    scheme = text.split("://", 1)[0].lower() if isinstance(text, str) and "://" in text else ""
    if not scheme.isidentifier():
        parse_url(text)  # raises the malformed-URL error
    provider = provider_for(scheme)
    url = parse_url(text, secret_params=provider.secret_parameters)
    unknown = sorted(set(url.params) - provider.parameters)
    if unknown:
        allowed = ", ".join(sorted(provider.parameters)) or "none"
        raise InvalidArgument(
            f"unknown URL parameter {unknown[0]!r} for {scheme}:// (accepted: {allowed})"
        )
    return provider, url if sdk is None else _with_sdk(provider, url, sdk)


def _with_sdk(provider: Provider, url: Url, sdk: object) -> Url:
    expected = provider.sdk_type
    if expected is None:
        raise InvalidArgument(
            f"the {url.scheme}:// provider ({provider.distribution}) takes no SDK objects: "
            "leave sdk= out"
        )
    if not isinstance(sdk, expected):
        raise InvalidArgument(
            f"sdk= for {url.scheme}:// URLs must be a {expected.__module__.split('.')[0]}."
            f"{expected.__qualname__}, not {type(sdk).__module__}.{type(sdk).__qualname__}"
        )
    return url.replace(sdk=sdk)
