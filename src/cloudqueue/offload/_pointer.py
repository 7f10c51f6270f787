"""The wire formats of a claim check: what is sent in place of an offloaded body.

Two formats. Ours, on every destination: attribute ``cloudqueue.payload`` = the
payload's byte length, body = UTF-8 JSON ``{"uri": ..., "size": N, "sha256": hex}``.
The AWS extended clients' (Java ``amazon-sqs-java-extended-client-lib``, Python
``amazon-sqs-extended-client``), on SQS and SNS destinations with an ``s3://``
store: attribute ``ExtendedPayloadSize`` = the byte length, body =
``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": B, "s3Key": K}]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import InvalidArgument
from ..wire import PAYLOAD_ATTRIBUTE

__all__ = [
    "AWS_LEGACY_POINTER_CLASS",
    "AWS_LEGACY_SIZE_ATTRIBUTE",
    "AWS_POINTER_CLASS",
    "AWS_SIZE_ATTRIBUTE",
    "PAYLOAD_ATTRIBUTE",
    "ClaimCheck",
    "aws_pointer",
    "marker_names",
    "our_pointer",
    "read_pointer",
]

#: The AWS extended clients' marker attribute (payload length in bytes), and its
#: older name, still accepted on receipt.
AWS_SIZE_ATTRIBUTE = "ExtendedPayloadSize"
AWS_LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
#: The class names the AWS clients put first in their pointer body; the Java
#: client's legacy one is accepted on receipt.
AWS_POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
AWS_LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"

_AWS_CLASSES = frozenset({AWS_POINTER_CLASS, AWS_LEGACY_POINTER_CLASS})
_AWS_MARKERS = (AWS_SIZE_ATTRIBUTE, AWS_LEGACY_SIZE_ATTRIBUTE)


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """A pointer read from a received message."""

    uri: str
    #: Payload length the sender declared (None when it did not say).
    size: int | None
    #: Hex SHA-256 of the payload (our format only): checked on fetch.
    sha256: str | None


def marker_names(aws: bool) -> tuple[str, ...]:
    """The attribute names that mark a pointer on a destination (reserved on send)."""
    return (PAYLOAD_ATTRIBUTE, *_AWS_MARKERS) if aws else (PAYLOAD_ATTRIBUTE,)


def our_pointer(uri: str, size: int, sha256: str) -> tuple[bytes, dict[str, str]]:
    """Body and marker attribute of our format."""
    body = json.dumps({"uri": uri, "size": size, "sha256": sha256}, separators=(",", ":"))
    return body.encode(), {PAYLOAD_ATTRIBUTE: str(size)}


def aws_pointer(uri: str, size: int) -> tuple[bytes, dict[str, str]]:
    """Body and marker attribute of the AWS extended clients' format (``uri`` is s3://)."""
    parts = urlsplit(uri)
    body = json.dumps(
        [AWS_POINTER_CLASS, {"s3BucketName": parts.netloc, "s3Key": parts.path.lstrip("/")}],
        separators=(",", ":"),
    )
    return body.encode(), {AWS_SIZE_ATTRIBUTE: str(size)}


def read_pointer(attributes: Mapping[str, str], body: bytes, aws: bool) -> ClaimCheck | None:
    """The claim check a received message carries; None for an ordinary message.

    Only a message with a marker attribute is read as a pointer. A marker with a
    body that is not a valid pointer raises InvalidArgument saying what is wrong
    (the caller turns it into that message's PayloadUnavailable).
    """
    if PAYLOAD_ATTRIBUTE in attributes:
        return _read_ours(body)
    if aws and any(name in attributes for name in _AWS_MARKERS):
        return _read_aws(attributes, body)
    return None


def _read_ours(body: bytes) -> ClaimCheck:
    try:
        pointer = json.loads(body)
    except ValueError:
        raise InvalidArgument("its body is not the JSON of a claim check") from None
    if not isinstance(pointer, dict):
        raise InvalidArgument("its claim check is not a JSON object")
    uri, size, digest = pointer.get("uri"), pointer.get("size"), pointer.get("sha256")
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidArgument("its claim check has no uri")
    if type(size) is not int or size < 0:
        raise InvalidArgument("its claim check has no valid size")
    if not isinstance(digest, str) or len(digest) != 64:
        raise InvalidArgument("its claim check has no valid sha256")
    return ClaimCheck(uri, size, digest.lower())


def _read_aws(attributes: Mapping[str, str], body: bytes) -> ClaimCheck:
    try:
        pointer = json.loads(body)
    except ValueError:
        raise InvalidArgument("its body is not the JSON of an S3 pointer") from None
    if (
        not isinstance(pointer, list)
        or len(pointer) != 2
        or pointer[0] not in _AWS_CLASSES
        or not isinstance(pointer[1], dict)
    ):
        raise InvalidArgument(f"its body is not a [{AWS_POINTER_CLASS!r}, {{...}}] S3 pointer")
    bucket, key = pointer[1].get("s3BucketName"), pointer[1].get("s3Key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise InvalidArgument("its S3 pointer lacks s3BucketName or s3Key")
    raw = attributes.get(AWS_SIZE_ATTRIBUTE, attributes.get(AWS_LEGACY_SIZE_ATTRIBUTE))
    size = int(raw) if raw is not None and raw.isascii() and raw.isdigit() else None
    return ClaimCheck(f"s3://{bucket}/{key}", size, None)
