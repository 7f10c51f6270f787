"""The ``offload=`` argument every adapter takes, checked in one place and turned into
the :class:`~cloudqueue.offload._consuming.PayloadResolver` its trigger runner applies
before any handler runs.

Every adapter keeps payloads (``delete_after_ack`` is refused): each trigger settles the
message itself *after* the function returns (Lambda deletes the records, the Functions
host completes the message, Pub/Sub records the 2xx as an ack), and none of them tells
the function whether that settlement succeeded. Deleting a payload whose message then
comes back (an expired lock, a lost response) would turn a redelivery into a lost
message, so payloads expire by the store's lifecycle rule instead.
"""

from __future__ import annotations

from ..errors import InvalidArgument
from ..offload import Offload, open_store
from ..offload._consuming import PayloadResolver

__all__ = ["payload_resolver"]


def payload_resolver(
    offload: object, adapter: str, *, aws_format: bool, settled_by: str
) -> PayloadResolver:
    """The resolver of ``adapter`` (its name, as the user called it) for ``offload``.

    ``aws_format``: the trigger's messages may carry the AWS extended clients' S3
    pointer (Lambda: SQS and SNS). ``settled_by``: who settles the message after the
    function returns, said in the refusal of ``delete_after_ack``. Without ``offload``
    the resolver has no store, so a pointer still fails loudly on ``.body``. The store
    is opened here, once per process (a cold start), like an SDK client.
    """
    if offload is None:
        return PayloadResolver(None, aws_format=aws_format)
    if not isinstance(offload, Offload):
        raise InvalidArgument(
            f"{adapter}(offload=...) must be a cloudqueue.Offload (or None), "
            f"not {type(offload).__name__}"
        )
    if offload.delete_after_ack:
        raise InvalidArgument(
            f"{adapter}(offload=...) keeps payloads: delete_after_ack is not supported, as "
            f"{settled_by} after the function returns and the function never learns whether "
            "that succeeded; expire payloads with a lifecycle rule instead "
            "(docs/large-messages.md)"
        )
    return PayloadResolver(open_store(offload.location), aws_format=aws_format)
