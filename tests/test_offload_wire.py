"""Claim-check wire formats and the producer decorator's clean-up, below the public API:
pointers in both formats read back (legacy AWS names included), and an upload whose send
fails is deleted."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from cloudqueue import Message
from cloudqueue.driver import Capabilities, TopicDriver
from cloudqueue.errors import InvalidArgument, QueueError, Unavailable
from cloudqueue.offload import (
    AWS_LEGACY_POINTER_CLASS,
    AWS_LEGACY_SIZE_ATTRIBUTE,
    AWS_POINTER_CLASS,
    AWS_SIZE_ATTRIBUTE,
    PAYLOAD_ATTRIBUTE,
    Offload,
)
from cloudqueue.offload._file import FileStore
from cloudqueue.offload._pointer import aws_pointer, our_pointer, read_pointer
from cloudqueue.offload._producing import OffloadingTopic
from cloudqueue.providers.memory import capabilities_for


def test_our_pointer_reads_back() -> None:
    body, markers = our_pointer("gs://b/p/k", 12, "ab" * 32)
    assert markers == {PAYLOAD_ATTRIBUTE: "12"}
    claim = read_pointer(markers, body, aws=False)
    assert claim is not None and (claim.uri, claim.size, claim.sha256) == ("gs://b/p/k", 12, "ab" * 32)


def test_the_aws_format_is_exactly_the_extended_clients() -> None:
    body, markers = aws_pointer("s3://bucket/prefix/key", 300_000)
    assert markers == {AWS_SIZE_ATTRIBUTE: "300000"}
    assert json.loads(body) == [AWS_POINTER_CLASS, {"s3BucketName": "bucket", "s3Key": "prefix/key"}]
    claim = read_pointer(markers, body, aws=True)
    assert claim is not None and (claim.uri, claim.size, claim.sha256) == (
        "s3://bucket/prefix/key", 300_000, None)


def test_legacy_aws_names_are_read_and_aws_names_mean_nothing_elsewhere() -> None:
    body = json.dumps([AWS_LEGACY_POINTER_CLASS, {"s3BucketName": "b", "s3Key": "k"}]).encode()
    claim = read_pointer({AWS_LEGACY_SIZE_ATTRIBUTE: "5"}, body, aws=True)
    assert claim is not None and claim.uri == "s3://b/k" and claim.size == 5
    # On a provider that did not opt in, the AWS attribute is an ordinary attribute.
    assert read_pointer({AWS_SIZE_ATTRIBUTE: "5"}, body, aws=False) is None
    assert read_pointer({"other": "x"}, b"{}", aws=True) is None


@pytest.mark.parametrize(
    ("attributes", "body", "named"),
    [
        ({PAYLOAD_ATTRIBUTE: "1"}, b"not json", "not the JSON"),
        ({PAYLOAD_ATTRIBUTE: "1"}, b"[1]", "not a JSON object"),
        ({PAYLOAD_ATTRIBUTE: "1"}, b'{"size": 1, "sha256": "x"}', "no uri"),
        ({PAYLOAD_ATTRIBUTE: "1"}, b'{"uri": "s3://b/k", "size": -1}', "size"),
        ({PAYLOAD_ATTRIBUTE: "1"}, b'{"uri": "s3://b/k", "size": 1, "sha256": "x"}', "sha256"),
        ({AWS_SIZE_ATTRIBUTE: "1"}, b'["java.lang.String", {}]', "S3 pointer"),
        ({AWS_SIZE_ATTRIBUTE: "1"}, json.dumps([AWS_POINTER_CLASS, {"s3Key": "k"}]).encode(),
         "s3BucketName"),
    ],
)
def test_a_malformed_pointer_says_what_is_wrong(
    attributes: dict[str, str], body: bytes, named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        read_pointer(attributes, body, aws=True)


class RefusingTopic(TopicDriver):
    """A destination that refuses sends: wholly (raises) or per message."""

    def __init__(self, *, whole: bool) -> None:
        self.whole = whole

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_for(None)

    def send_batch(self, messages: Sequence[Message]) -> list[str | QueueError]:
        if self.whole:
            raise Unavailable("destination down")
        return [Unavailable("refused") for _ in messages]


class CountingStore(FileStore):
    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.uploaded: list[str] = []

    def put(self, key: str, data: bytes) -> str:
        uri = super().put(key, data)
        self.uploaded.append(uri)
        return uri


@pytest.mark.parametrize("whole", [True, False])
def test_a_payload_whose_pointer_was_not_sent_is_deleted(tmp_path: Path, whole: bool) -> None:
    location = f"file://{tmp_path}"
    store = CountingStore(str(tmp_path))
    topic = OffloadingTopic(
        RefusingTopic(whole=whole), store, Offload(location, threshold=0), aws_format=False
    )
    if whole:
        with pytest.raises(Unavailable):
            topic.send_batch([Message(b"one"), Message(b"two")])
    else:
        results = topic.send_batch([Message(b"one"), Message(b"two")])
        assert all(isinstance(result, Unavailable) for result in results)
    assert len(store.uploaded) == 2
    assert os.listdir(tmp_path) == []  # uploaded, then deleted: no orphan left behind
