"""The cloud payload stores against their local servers, through the official SDKs.

s3:// on LocalStack, gs:// on gcp-storage-emulator, az:// on Azurite (cloudqueue.testing.storage).
Each store is opened the way the core opens it (``open_store``, configured by the SDK's own
environment variables); what it wrote is checked with the SDK directly, not through the store.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cloudqueue_sqs.testing import LocalStack, install_localstack

from cloudqueue.errors import InvalidArgument, NotFound, QueueError, Unavailable
from cloudqueue.offload import PayloadStore, open_store
from cloudqueue.testing.secrets import Exposure, log_everything
from cloudqueue.testing.storage import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, GcsEmulator, free_loopback_port

REPO_ROOT = Path(__file__).resolve().parents[1]
FIFTY_MB = 50 * 1024 * 1024


# -- servers, one of each per module ---------------------------------------------------------


@pytest.fixture(scope="module")
def localstack() -> Iterator[LocalStack]:
    if os.environ.get("CLOUDQUEUE_SQS_ENDPOINT"):
        server = LocalStack()  # reuses the running one
    else:
        venv = Path(os.environ.get("CLOUDQUEUE_LOCALSTACK_VENV") or REPO_ROOT / ".venv-localstack")
        install_localstack(venv)
        server = LocalStack(venv)
    with server:
        yield server


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with Azurite() as server:
        yield server


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[GcsEmulator]:
    with GcsEmulator() as server:
        yield server


# -- one bucket per test, and the SDK's own view of it ---------------------------------------


@dataclass
class Backend:
    location: str  # "<scheme>://<bucket>/<prefix>"
    read: Callable[[str], bytes | None]  # the object behind a URI, None when missing (SDK direct)


def _name() -> str:
    return f"cq-{uuid.uuid4().hex[:12]}"


#: LocalStack takes any credentials; this secret is unlike any other text in messages.
LOCALSTACK_SECRET = "stores-test-secret-4f9c2d"


def _s3_backend(server: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Backend:
    import boto3
    import botocore.exceptions

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    # Registered as a secret by the store, for the whole process: a common word such as
    # "test" would then be blanked out of every later error message (paths included).
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCALSTACK_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", endpoint_url=server.endpoint_url)
    bucket = _name()
    s3.create_bucket(Bucket=bucket)

    def read(uri: str) -> bytes | None:
        found_bucket, key = uri.removeprefix("s3://").split("/", 1)
        try:
            body: bytes = s3.get_object(Bucket=found_bucket, Key=key)["Body"].read()
            return body
        except botocore.exceptions.ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchKey":
                return None
            raise

    return Backend(f"s3://{bucket}/payloads", read)


def _gcs_backend(server: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> Backend:
    import google.api_core.exceptions
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.emulator_host)
    client = storage.Client(project="test")
    bucket = _name()
    client.create_bucket(bucket)

    def read(uri: str) -> bytes | None:
        found_bucket, name = uri.removeprefix("gs://").split("/", 1)
        try:
            data: bytes = client.bucket(found_bucket).blob(name).download_as_bytes()
            return data
        except google.api_core.exceptions.NotFound:
            return None

    return Backend(f"gs://{bucket}/payloads", read)


def _azure_backend(server: Azurite, monkeypatch: pytest.MonkeyPatch) -> Backend:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    service = BlobServiceClient.from_connection_string(server.connection_string)
    container = _name()
    service.create_container(container)

    def read(uri: str) -> bytes | None:
        found_container, name = uri.removeprefix("az://").split("/", 1)
        try:
            data: bytes = service.get_blob_client(found_container, name).download_blob().readall()
            return data
        except ResourceNotFoundError:
            return None

    return Backend(f"az://{container}/payloads", read)


@pytest.fixture(params=["s3", "gs", "az"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    if request.param == "s3":
        return _s3_backend(request.getfixturevalue("localstack"), monkeypatch)
    if request.param == "gs":
        return _gcs_backend(request.getfixturevalue("gcs_emulator"), monkeypatch)
    return _azure_backend(request.getfixturevalue("azurite"), monkeypatch)


@pytest.fixture
def store(backend: Backend) -> Iterator[PayloadStore]:
    opened = open_store(backend.location)
    yield opened
    opened.close()


# -- the behaviour every store shares --------------------------------------------------------


def test_opened_by_scheme_with_the_location_normalized(backend: Backend) -> None:
    scheme = backend.location.split("://")[0]
    opened = open_store(backend.location + "/")
    try:
        assert opened.scheme == scheme
        assert opened.location == backend.location
    finally:
        opened.close()


def test_put_then_get_round_trips_50_mb(store: PayloadStore, backend: Backend) -> None:
    data = os.urandom(FIFTY_MB)
    key = uuid.uuid4().hex
    uri = store.put(key, data)
    assert uri == f"{backend.location}/{key}"
    assert backend.read(uri) == data  # where the URI says, as the SDK sees it
    assert store.get(uri) == data


def test_delete_removes_the_object_and_a_missing_one_is_fine(
    store: PayloadStore, backend: Backend
) -> None:
    uri = store.put(uuid.uuid4().hex, b"payload")
    kept = store.put(uuid.uuid4().hex, b"other payload")
    store.delete(uri)
    assert backend.read(uri) is None
    assert backend.read(kept) == b"other payload"
    store.delete(uri)  # again: already gone is not an error


def test_get_of_a_missing_object_is_not_found(store: PayloadStore) -> None:
    uri = f"{store.location}/{uuid.uuid4().hex}"
    with pytest.raises(NotFound) as info:
        store.get(uri)
    assert not info.value.retryable
    assert uri in str(info.value)


def test_contains_only_objects_under_its_location(store: PayloadStore, backend: Backend) -> None:
    scheme, rest = backend.location.split("://")
    bucket = rest.split("/")[0]
    inside = f"{backend.location}/{uuid.uuid4().hex}"
    assert store.contains(inside)
    assert store.contains(f"{backend.location}/nested/{uuid.uuid4().hex}")
    outside = [
        f"{scheme}://other-{bucket}/payloads/k",  # another bucket
        f"{scheme}://{bucket}/k",  # the bucket, above the prefix
        f"{scheme}://{bucket}/payloads-else/k",  # a sibling prefix sharing the first letters
        f"{scheme}://{bucket}/payloads/../k",  # a path-style URL could normalize this away
        f"{scheme}://{bucket}/payloads//k",
        f"{scheme}://{bucket}/payloads/",
        f"{scheme}://{bucket}/payloads",
        f"file:///{bucket}/payloads/k",
        inside.replace(f"{scheme}://", "xx://"),
    ]
    for uri in outside:
        assert not store.contains(uri), uri
        # Never fetched, whatever the uri: the store refuses before any request.
        with pytest.raises(InvalidArgument):
            store.get(uri)
        with pytest.raises(InvalidArgument):
            store.delete(uri)


@pytest.mark.parametrize("key", ["", "../k", "a//b", "a/./b", "with space", "x" * 1100])
def test_bad_keys_are_refused_before_any_request(store: PayloadStore, key: str) -> None:
    with pytest.raises(InvalidArgument, match="payload key"):
        store.put(key, b"x")


def test_a_missing_bucket_is_not_found_naming_the_payload(backend: Backend) -> None:
    scheme = backend.location.split("://")[0]
    missing = open_store(f"{scheme}://{_name()}-gone/payloads")
    try:
        with pytest.raises(NotFound) as info:
            missing.put(uuid.uuid4().hex, b"x")
        assert missing.location in str(info.value)
    finally:
        missing.close()


def test_store_objects_are_shared_across_threads(store: PayloadStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    payloads = {uuid.uuid4().hex: os.urandom(64 * 1024) for _ in range(16)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        uris = dict(zip(payloads, pool.map(lambda key: store.put(key, payloads[key]), payloads), strict=True))
        read = dict(zip(uris, pool.map(store.get, uris.values()), strict=True))
    assert read == payloads


# -- a store that is down fails quickly and retryably ----------------------------------------
# pytest-timeout bounds each of these: the SDKs' default retries would take minutes
# (google-cloud-storage 120 s, azure-storage-blob backs off 15 s and more per attempt).


def _assert_down(store: PayloadStore, uri: str) -> None:
    with pytest.raises(Unavailable) as on_get:
        store.get(uri)
    with pytest.raises(Unavailable) as on_put:
        store.put(uuid.uuid4().hex, b"x")
    assert on_get.value.retryable and on_put.value.retryable
    assert uri in str(on_get.value)


@pytest.mark.timeout(60)
def test_s3_down_is_a_retryable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on this port: what a stopped LocalStack looks like to the client.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_loopback_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    # Registered as a secret by the store, for the whole process: a common word such as
    # "test" would then be blanked out of every later error message (paths included).
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCALSTACK_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store("s3://down-bucket/payloads")
    try:
        _assert_down(store, "s3://down-bucket/payloads/k")
    finally:
        store.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("emulator", "make_backend"),
    [(GcsEmulator, _gcs_backend), (Azurite, _azure_backend)],
    ids=["gs", "az"],
)
def test_a_stopped_emulator_is_a_retryable_error(
    emulator: type[GcsEmulator | Azurite],
    make_backend: Callable[[Any, pytest.MonkeyPatch], Backend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store outlives its server: what an outage after start-up looks like to the client.
    with emulator() as server:
        store = open_store(make_backend(server, monkeypatch).location)
        uri = store.put(uuid.uuid4().hex, b"payload")
    try:
        _assert_down(store, uri)
    finally:
        store.close()


# -- secrets -----------------------------------------------------------------------------------


def test_the_azure_account_key_shows_nowhere(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log_everything(caplog)
    backend = _azure_backend(azurite, monkeypatch)
    store = open_store(backend.location)
    exposure = Exposure(AZURITE_KEY)
    exposure.objects(store, azurite)
    uri = store.put(uuid.uuid4().hex, b"payload")
    assert store.get(uri) == b"payload"
    errors: list[QueueError] = []
    for provoke in (
        lambda: store.get(f"{store.location}/{uuid.uuid4().hex}"),  # NotFound from the service
        lambda: open_store(f"az://{_name()}-gone/p").put("k", b"x"),  # a missing container
    ):
        with pytest.raises(QueueError) as info:
            provoke()
        errors.append(info.value)
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string.replace(str(azurite.port), str(free_loopback_port())),
    )
    down = open_store(backend.location)
    with pytest.raises(Unavailable) as info:
        down.get(uri)
    errors.append(info.value)
    for error in errors:
        exposure.error(error)
    exposure.objects(down)
    store.close()
    down.close()
    exposure.assert_clean(caplog=caplog)


def test_the_aws_secret_key_shows_nowhere(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cloudqueue.testing.secrets import new_secret

    log_everything(caplog)
    backend = _s3_backend(localstack, monkeypatch)
    secret = new_secret()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # LocalStack accepts any key
    store = open_store(backend.location)
    exposure = Exposure(secret)
    uri = store.put(uuid.uuid4().hex, b"payload")
    with pytest.raises(NotFound) as info:
        store.get(f"{store.location}/{uuid.uuid4().hex}")
    exposure.error(info.value)
    exposure.objects(store)
    store.close()
    assert backend.read(uri) == b"payload"
    exposure.assert_clean(caplog=caplog)


def test_a_missing_sdk_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudqueue.errors import Unsupported

    # None in sys.modules makes `import x` raise ImportError, as when x is not installed.
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(Unsupported, match=r"cloudqueue\[offload-s3\]"):
        open_store("s3://bucket/p")
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    with pytest.raises(Unsupported, match=r"cloudqueue\[offload-gcs\]"):
        open_store("gs://bucket/p")
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    with pytest.raises(Unsupported, match=r"cloudqueue\[offload-azure\]"):
        open_store("az://container/p")


def test_azure_by_account_url_with_a_sas(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    log_everything(caplog)
    backend = _azure_backend(azurite, monkeypatch)
    container = backend.location.removeprefix("az://").split("/")[0]
    sas = generate_container_sas(
        AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", f"{azurite.blob_endpoint}?{sas}")
    store = open_store(backend.location)
    data = os.urandom(1024 * 1024)
    uri = store.put(uuid.uuid4().hex, data)
    assert backend.read(uri) == data
    assert store.get(uri) == data
    store.delete(uri)
    assert backend.read(uri) is None
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    exposure = Exposure(signature, unquote(signature), AZURITE_KEY)
    with pytest.raises(NotFound) as info:
        store.get(uri)
    exposure.error(info.value)
    exposure.objects(store)
    store.close()
    exposure.assert_clean(caplog=caplog)
