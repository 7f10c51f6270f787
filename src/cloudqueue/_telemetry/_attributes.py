"""The attributes that describe a destination on every span and metric. Pure (no
OpenTelemetry import): the runtimes read them through the consumers' public
``telemetry_attributes`` whether telemetry is on or off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._url import parse_url

if TYPE_CHECKING:
    from ..driver import SubscriptionDriver, TopicDriver

__all__ = ["destination_attributes"]


def destination_attributes(
    driver: TopicDriver | SubscriptionDriver, where: str
) -> dict[str, str | int]:
    """Defaults from the URL (``where``, as shown: secrets are already ``***``),
    then whatever the driver's ``telemetry_attributes()`` says."""
    url = parse_url(where)
    attributes: dict[str, str | int] = {"messaging.system": url.scheme}
    segments = url.segments
    if segments:
        attributes["messaging.destination.name"] = segments[-1]
    if url.subscription is not None:
        attributes["messaging.destination.subscription.name"] = url.subscription
    attributes.update(driver.telemetry_attributes())
    return attributes
