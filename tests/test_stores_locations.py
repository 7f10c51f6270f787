"""Locations of the cloud payload stores: what opens, what is refused and why (no server needed:
opening makes no request)."""

from __future__ import annotations

import pytest

from cloudqueue.errors import InvalidArgument, QueueError
from cloudqueue.offload import open_store
from cloudqueue.testing.secrets import Exposure, new_secret


@pytest.fixture(autouse=True)
def _azure_account(monkeypatch: pytest.MonkeyPatch) -> None:
    # az:// reads its account when opened; these tests only parse locations.
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/acct;",
    )


@pytest.mark.parametrize(
    ("location", "normalized"),
    [
        ("s3://my-bucket", "s3://my-bucket"),
        ("s3://my.bucket.example/a/b/", "s3://my.bucket.example/a/b"),
        ("gs://my_bucket/prefix", "gs://my_bucket/prefix"),
        ("gs://" + "a" * 63 + "/p", "gs://" + "a" * 63 + "/p"),
        ("az://container-1/prefix/", "az://container-1/prefix"),
        ("az://abc", "az://abc"),
    ],
)
def test_good_locations_open_normalized(location: str, normalized: str) -> None:
    store = open_store(location)
    assert store.location == normalized
    assert repr(store) == f"{type(store).__name__}({normalized!r})"


@pytest.mark.parametrize(
    ("location", "named"),
    [
        ("s3://", "S3 bucket name"),
        ("s3://ab/p", "S3 bucket name"),  # too short
        ("s3://My-Bucket/p", "S3 bucket name"),  # uppercase
        ("s3://under_score", "S3 bucket name"),
        ("s3://" + "a" * 64, "S3 bucket name"),
        ("s3://a..b/p", "S3 bucket name"),
        ("s3://bucket/a/../b", "prefix"),
        ("s3://bucket/a//b", "prefix"),
        ("s3://bucket/p?versionId=1", "no query"),
        ("gs://-bucket/p", "Cloud Storage bucket name"),
        ("gs://" + "a" * 64, "Cloud Storage bucket name"),  # only dotted names may be longer
        ("gs://bucket/a b", "prefix"),
        ("gs://bucket/p#x", "no query"),
        ("az://ab/p", "Azure container name"),
        ("az://Container/p", "Azure container name"),
        ("az://con--tainer/p", "Azure container name"),  # no consecutive hyphens
        ("az://container_1/p", "Azure container name"),
        ("az://container/./p", "prefix"),
        ("az://container/p?sv=2020&sig=x", "no query"),
    ],
)
def test_bad_locations_are_invalid_arguments_naming_the_rule(location: str, named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        open_store(location)


def test_azure_without_an_account_names_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    with pytest.raises(InvalidArgument) as info:
        open_store("az://container/p")
    assert "AZURE_STORAGE_CONNECTION_STRING" in str(info.value)
    assert "AZURE_STORAGE_ACCOUNT_URL" in str(info.value)


def test_a_sas_in_the_account_url_is_a_secret_from_the_moment_the_store_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signature = new_secret()
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", f"http://127.0.0.1:9/acct?sv=2024-01-01&sig={signature}")
    store = open_store("az://container/p")
    exposure = Exposure(signature)
    exposure.objects(store)
    # Any text made after opening is scrubbed, whoever writes it.
    exposure.error(QueueError(f"the SDK said: bad request to ...?sig={signature}"))
    exposure.assert_clean()
