"""``PubSubSdk``: the user's own Google objects, for ``sdk=`` (issue 21).

Kept free of Google imports at module level: the plugin registry imports this package, and
the client modules take about half a second to import. The checks import them when an
instance is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudqueue.driver import SdkObjects, expect_type
from cloudqueue.errors import InvalidArgument

if TYPE_CHECKING:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import Credentials
    from google.pubsub_v1 import PublisherClient, SubscriberClient

__all__ = ["PubSubSdk"]


@dataclass(frozen=True, repr=False)  # the base's repr: which fields are set, never values
class PubSubSdk(SdkObjects):
    """Google objects cloudqueue uses instead of making its own.

    ``publisher`` and ``subscriber`` are ready clients (``google.cloud.pubsub_v1`` or the
    generated ``google.pubsub_v1`` classes); they are used as given and never closed by
    cloudqueue. Whatever client is not given, cloudqueue makes from ``credentials`` and
    ``client_options`` (Application Default Credentials and Google's endpoint when they are
    None), and closes it with the producer, consumer or call that made it. As with the
    official client, ``PUBSUB_EMULATOR_HOST`` takes precedence over both for the clients
    cloudqueue makes.
    """

    credentials: Credentials | None = None
    client_options: ClientOptions | dict[str, Any] | None = None
    publisher: PublisherClient | None = None
    subscriber: SubscriberClient | None = None

    def __post_init__(self) -> None:
        from google.api_core import client_options as options_module
        from google.auth.credentials import Credentials
        from google.pubsub_v1 import PublisherClient, SubscriberClient

        expect_type("PubSubSdk", "credentials", self.credentials, Credentials,
                    "a google.auth.credentials.Credentials")
        expect_type("PubSubSdk", "client_options", self.client_options,
                    (options_module.ClientOptions, dict),
                    "a google.api_core.client_options.ClientOptions or a dict of its fields")
        expect_type("PubSubSdk", "publisher", self.publisher, PublisherClient,
                    "a google.cloud.pubsub_v1.PublisherClient (or google.pubsub_v1's)")
        expect_type("PubSubSdk", "subscriber", self.subscriber, SubscriberClient,
                    "a google.cloud.pubsub_v1.SubscriberClient (or google.pubsub_v1's)")
        if isinstance(self.client_options, dict):
            try:
                options_module.from_dict(self.client_options)
            except ValueError as error:  # names the unknown key, never a value
                raise InvalidArgument(f"PubSubSdk client_options: {error}") from None
        if self.publisher is not None and self.subscriber is not None and (
            self.credentials is not None or self.client_options is not None
        ):
            raise InvalidArgument(
                "PubSubSdk: credentials and client_options configure the clients cloudqueue "
                "makes, and with both publisher and subscriber given it makes none; configure "
                "your clients with them instead"
            )

