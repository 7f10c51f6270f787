"""``cloudqueue providers``: what is installed, and what a URL's destination supports."""

from __future__ import annotations

import argparse
import importlib.metadata
import json

from .. import capabilities
from .._registry import _KNOWN_DISTRIBUTIONS, providers
from ._common import display_url

NAME = "providers"
HELP = "list installed providers; with --url, the capabilities and limits of that destination"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="show the capabilities of this destination")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def execute(args: argparse.Namespace) -> int:
    if args.url:
        return _show_capabilities(args.url, as_json=args.json)
    installed = _installed()
    missing = {scheme: hint for scheme, hint in _KNOWN_DISTRIBUTIONS.items() if scheme not in providers()}
    if args.json:
        print(json.dumps({"installed": installed, "not_installed": missing}, indent=2))
        return 0
    print(f"{'SCHEMES':<16} {'DISTRIBUTION':<36} PROVIDER")
    for row in installed:
        print(f"{', '.join(row['schemes']):<16} {row['distribution']:<36} {row['provider']}")
    for scheme, hint in missing.items():
        print(f"{scheme + ' (missing)':<16} {hint}")
    return 0


def _installed() -> list[dict[str, str | list[str]]]:
    seen: dict[int, dict[str, str | list[str]]] = {}
    for provider in providers().values():
        if id(provider) in seen:
            continue
        seen[id(provider)] = {
            "schemes": list(provider.schemes),
            "distribution": _with_version(provider.distribution),
            "provider": f"{type(provider).__module__}.{type(provider).__qualname__}",
        }
    return sorted(seen.values(), key=lambda row: str(row["schemes"]))


def _with_version(distribution: str) -> str:
    try:
        return f"{distribution} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return distribution


def _show_capabilities(url: str, *, as_json: bool) -> int:
    described = capabilities(url).describe()
    if as_json:
        print(json.dumps({"url": display_url(url), "capabilities": described}, indent=2))
        return 0
    print(display_url(url))
    limits = described.pop("limits")
    for name, value in described.items():
        print(f"  {name:<28} {'yes' if value is True else 'no' if value is False else value}")
    print("  limits:")
    assert isinstance(limits, dict)
    for name, value in limits.items():
        print(f"    {name:<28} {value}")
    return 0
