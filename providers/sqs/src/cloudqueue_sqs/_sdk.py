"""The user's own boto3 objects for ``sqs://`` and ``sns://`` URLs: :class:`SqsSdk`.

One bundle serves both schemes because an SNS consumer reads an SQS queue: the SNS
client publishes and declares topics, the SQS client reads the subscription's queue.

This module imports no SDK at import time (the provider entry points import it): the
type checks import boto3 when an :class:`SqsSdk` is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudqueue.driver import SdkObjects, expect_type
from cloudqueue.errors import InvalidArgument

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

__all__ = ["SqsSdk"]


@dataclass(frozen=True, repr=False, eq=False)
class SqsSdk(SdkObjects):
    """Your own boto3 objects for ``sqs://`` and ``sns://`` URLs, passed as ``sdk=``.

    - ``session``: the ``boto3.Session`` cloudqueue builds its clients from (its
      credentials, region and profile), instead of boto3's default session.
    - ``config``: a ``botocore.config.Config`` merged over cloudqueue's own (yours wins
      where you set a value: timeouts, proxies, user agent, retries).
    - ``sqs_client`` / ``sns_client``: ready clients used as they are, with their own
      credentials, region, endpoint and config.

    Clients you pass are never closed by cloudqueue; clients it builds (from
    ``session``, or from boto3's default session when you give none) are closed when
    the producer or consumer closes, or when the provisioning call returns. Equality
    is identity: two bundles are the same only if they are the same object.
    """

    session: boto3.Session | None = None
    config: Config | None = None
    sqs_client: Any = None
    sns_client: Any = None

    def __post_init__(self) -> None:
        import boto3
        from botocore.client import BaseClient
        from botocore.config import Config

        expect_type("SqsSdk", "session", self.session, boto3.Session, "a boto3.Session")
        expect_type("SqsSdk", "config", self.config, Config, "a botocore.config.Config")
        for name, service in (("sqs_client", "sqs"), ("sns_client", "sns")):
            client = getattr(self, name)
            expect_type(
                "SqsSdk", name, client, BaseClient, f"a boto3 client made with client({service!r})"
            )
            if client is not None and client.meta.service_model.service_name != service:
                made = client.meta.service_model.service_name
                raise InvalidArgument(
                    f"SqsSdk({name}=...) must be a boto3 client made with client({service!r}), "
                    f"not one made with client({made!r})"
                )

    def ready_client(self, service: str) -> Any:
        """The user's own client for ``service``, if they passed one."""
        if service == "sqs":
            return self.sqs_client
        if service == "sns":
            return self.sns_client
        return None
