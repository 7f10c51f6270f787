"""Large payloads by claim check (``offload=``): what every provider must do with each store.

Not part of :class:`ContractSuite`: these cases need an object store beside the provider.
A provider opts in with a subclass that supplies the ``harness`` fixture, as for the suite,
and names the stores it wants; the class starts each store once per module, behind a
:class:`~cloudqueue.testing.faultproxy.FaultProxy` so that a case can take it down, and
gives each test a fresh location under it::

    class TestMyLargePayloads(LargePayloads):
        payload_stores = ("file", "s3", "gs", "az")   # the default: STORE_SCHEMES

        @pytest.fixture
        def harness(self): ...

Stores are reached as the library reaches them, through each SDK's own configuration
(``AWS_ENDPOINT_URL_S3``, ``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``),
which :func:`payload_storage_for` sets for as long as a store is open. ``s3`` is served by
LocalStack from the SQS plugin's test tools (:func:`localstack_s3_endpoint`); a provider
that already runs one overrides the ``s3_endpoint`` fixture (module or session scope).

Every case runs on every store of :attr:`LargePayloads.payload_stores`, the 50 MB round
trip included (1-3 s per store on two cores: each store's SDK moves a large object its
own way, multipart or resumable or in blocks); :attr:`LargePayloads.fifty_mb_stores`
narrows that one case if a provider must.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import pytest

import cloudqueue
from cloudqueue.errors import PayloadUnavailable

from ..faultproxy import FaultProxy
from ._base import SuiteBase, collect, quiet_for
from ._harness import Destination, Harness, eventually

__all__ = [
    "STORE_SCHEMES",
    "LargePayloads",
    "PayloadLocation",
    "PayloadStorage",
    "localstack_s3_endpoint",
    "payload_storage_for",
]

#: Every store scheme cloudqueue ships, in the order tests run them.
STORE_SCHEMES = ("file", "s3", "gs", "az")
_MB = 1_000_000
#: How long a received message may take to arrive, with the payload's upload before it.
_ARRIVAL = 60.0


class PayloadLocation(abc.ABC):
    """A fresh offload location for one test, and the test's hand on what is stored there
    (read directly through the store's SDK, not through cloudqueue)."""

    #: Whether the store's errors while :meth:`unreachable` are retryable (a service
    #: that is down comes back; a local directory that cannot be written does not).
    outage_retryable = True

    def __init__(self, location: str, storage: PayloadStorage) -> None:
        self.location = location
        self._storage = storage

    def offload(self, **settings: Any) -> cloudqueue.Offload:
        """An :class:`cloudqueue.Offload` to this location with ``settings``."""
        return cloudqueue.Offload(self.location, **settings)

    @abc.abstractmethod
    def stored(self) -> set[str]:
        """The URIs of the objects stored under this location now."""

    @abc.abstractmethod
    def remove(self, uri: str) -> None:
        """Delete one object behind cloudqueue's back."""

    def unreachable(self) -> contextlib.AbstractContextManager[None]:
        """Inside the block, every connection to the store fails (it is down)."""
        return self._storage.unreachable()


class PayloadStorage(abc.ABC):
    """One store's server for a test session, reached through a FaultProxy."""

    scheme: str

    def __init__(self) -> None:
        self.proxy: FaultProxy | None = None

    @abc.abstractmethod
    def new_location(self) -> PayloadLocation:
        """A location under a prefix no other test uses."""

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        assert self.proxy is not None, f"{self.scheme} storage has no proxy"
        self.proxy.cut_now()
        try:
            yield
        finally:
            self.proxy.restore()


def _prefix() -> str:
    return f"lp-{uuid.uuid4().hex[:12]}"


# -- file:// -----------------------------------------------------------------------------


class _FileStorage(PayloadStorage):
    scheme = "file"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def new_location(self) -> PayloadLocation:
        return _FileLocation(self.root / _prefix(), self)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        raise NotImplementedError  # per location: see _FileLocation.unreachable


class _FileLocation(PayloadLocation):
    # The outage simulated below is a path that is not a directory: a fault of the
    # location, not retryable (a full disk or a dropped mount would be).
    outage_retryable = False

    def __init__(self, directory: Path, storage: PayloadStorage) -> None:
        super().__init__(directory.as_uri(), storage)
        self.directory = directory

    def stored(self) -> set[str]:
        if not self.directory.is_dir():
            return set()
        return {
            path.as_uri() for path in self.directory.rglob("*")
            if path.is_file() and not path.name.startswith(".")  # temp files of atomic writes
        }

    def remove(self, uri: str) -> None:
        Path(urlsplit(uri).path).unlink()

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        # A local directory cannot go down; the closest is a path that cannot be written
        # (the tests run as root, so permissions would not stop a write): a plain file
        # where the directory should be.
        existed = self.directory.is_dir()
        moved = self.directory.with_name(self.directory.name + ".away")
        if existed:
            self.directory.rename(moved)
        self.directory.write_bytes(b"")
        try:
            yield
        finally:
            self.directory.unlink()
            if existed:
                moved.rename(self.directory)


# -- buckets: s3:// (LocalStack), gs:// (GCS emulator), az:// (Azurite) ------------------


class _BucketStorage(PayloadStorage):
    """A bucket (an Azure container) of its own in an object store; subclasses only list
    and delete keys through their SDK."""

    bucket: str

    def new_location(self) -> PayloadLocation:
        return _BucketLocation(f"{self.scheme}://{self.bucket}/{_prefix()}", self)

    @abc.abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """The keys of the bucket's objects that start with ``prefix``."""

    @abc.abstractmethod
    def delete_key(self, key: str) -> None:
        """Delete one object of the bucket."""


class _BucketLocation(PayloadLocation):
    _storage: _BucketStorage

    def _root(self) -> str:
        return f"{self._storage.scheme}://{self._storage.bucket}/"

    def stored(self) -> set[str]:
        root = self._root()
        return {root + key for key in self._storage.keys(self.location.removeprefix(root) + "/")}

    def remove(self, uri: str) -> None:
        self._storage.delete_key(uri.removeprefix(self._root()))


def _bucket_name() -> str:
    return f"cq-payloads-{uuid.uuid4().hex[:8]}"


class _S3Storage(_BucketStorage):
    scheme = "s3"

    def __init__(self, endpoint_url: str) -> None:
        super().__init__()
        import boto3  # type: ignore[import-untyped]

        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )
        self.bucket = _bucket_name()
        self.client.create_bucket(Bucket=self.bucket)

    def keys(self, prefix: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in listed.get("Contents", [])]

    def delete_key(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class _GcsStorage(_BucketStorage):
    scheme = "gs"

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[import-untyped]

        self.client = storage.Client(
            project="cloudqueue-test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
        self.bucket = _bucket_name()
        self.client.create_bucket(self.bucket)

    def keys(self, prefix: str) -> list[str]:
        return [blob.name for blob in self.client.list_blobs(self.bucket, prefix=prefix)]

    def delete_key(self, key: str) -> None:
        self.client.bucket(self.bucket).blob(key).delete()


class _AzureStorage(_BucketStorage):
    scheme = "az"

    def __init__(self, connection_string: str) -> None:
        super().__init__()
        from azure.storage.blob import BlobServiceClient

        self.service = BlobServiceClient.from_connection_string(connection_string)
        self.bucket = _bucket_name()
        self.container = self.service.create_container(self.bucket)

    def keys(self, prefix: str) -> list[str]:
        return [blob.name for blob in self.container.list_blobs(name_starts_with=prefix)]

    def delete_key(self, key: str) -> None:
        self.container.delete_blob(key)


# -- starting them -----------------------------------------------------------------------


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _proxied(url: str, proxy: FaultProxy) -> str:
    """``url`` (``scheme://127.0.0.1:port...``) with the proxy's port instead."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


@contextlib.contextmanager
def payload_storage_for(
    scheme: str, directory: Path, *, s3_endpoint: str | None = None
) -> Iterator[PayloadStorage]:
    """The store of ``scheme`` for a test session, with the environment pointing its SDK
    at it through a FaultProxy (restored on exit).

    ``directory``: where ``file`` locations and the emulators' data go. ``s3_endpoint``:
    a running LocalStack (``cloudqueue_sqs.testing.LocalStack``) for ``s3``; the GCS
    emulator and Azurite are started here (:mod:`cloudqueue.testing.storage`).
    """
    if scheme == "file":
        yield _FileStorage(directory)
        return
    with contextlib.ExitStack() as stack:
        storage: PayloadStorage
        if scheme == "s3":
            if s3_endpoint is None:
                raise ValueError("s3 storage needs s3_endpoint: a running LocalStack's URL")
            target = s3_endpoint
            storage = _S3Storage(s3_endpoint)
            proxy = stack.enter_context(FaultProxy("127.0.0.1", urlsplit(target).port or 80))
            env = {
                "AWS_ENDPOINT_URL_S3": _proxied(target, proxy),
                # LocalStack takes any credentials. The store registers the secret key
                # as a secret for the whole process: a word such as "test" would then be
                # blanked out of every later message, so the default is unlike any text.
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "large-payloads-key"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get(
                    "AWS_SECRET_ACCESS_KEY", "large-payloads-localstack-secret"
                ),
                "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            }
        elif scheme == "gs":
            from ..storage import GcsEmulator

            emulator = stack.enter_context(GcsEmulator())
            target = emulator.emulator_host
            storage = _GcsStorage(target)
            proxy = stack.enter_context(FaultProxy("127.0.0.1", urlsplit(target).port or 80))
            env = {"STORAGE_EMULATOR_HOST": _proxied(target, proxy)}
        elif scheme == "az":
            from ..storage import Azurite

            azurite = stack.enter_context(Azurite())
            target = azurite.blob_endpoint
            storage = _AzureStorage(azurite.connection_string)
            proxy = stack.enter_context(FaultProxy("127.0.0.1", urlsplit(target).port or 80))
            env = {
                "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string.replace(
                    f":{urlsplit(target).port}/", f":{proxy.port}/"
                )
            }
        else:
            raise ValueError(f"no payload storage for scheme {scheme!r}; known: {STORE_SCHEMES}")
        storage.proxy = proxy
        stack.enter_context(_environment(**env))
        yield storage


@contextlib.contextmanager
def localstack_s3_endpoint(venv: str | os.PathLike[str]) -> Iterator[str]:
    """The URL of a LocalStack serving S3, for ``s3`` storage: the one
    ``CLOUDQUEUE_SQS_ENDPOINT`` names when set, else one started from the virtual
    environment ``CLOUDQUEUE_LOCALSTACK_VENV`` or ``venv`` (installed there on first use).

    LocalStack's runner ships with the SQS plugin (``cloudqueue_sqs.testing``).
    """
    try:
        from cloudqueue_sqs.testing import LocalStack, install_localstack
    except ImportError as error:
        raise RuntimeError(
            "s3 payload storage runs on LocalStack from the SQS plugin's test tools: "
            "install cloudqueue-sqs, or leave s3 out of payload_stores"
        ) from error
    if os.environ.get("CLOUDQUEUE_SQS_ENDPOINT"):
        server = LocalStack()  # reuses the running one; needs no venv
    else:
        chosen = Path(os.environ.get("CLOUDQUEUE_LOCALSTACK_VENV") or venv)
        install_localstack(chosen)
        server = LocalStack(chosen)
    with server:
        yield server.endpoint_url


# -- the cases ---------------------------------------------------------------------------


def _payload(size: int) -> bytes:
    """Random bytes: nothing on the way may compress, decode or normalize them."""
    return os.urandom(size)


def _with_parameters(url: str, **parameters: str) -> str:
    encoded = "&".join(f"{name}={quote(value, safe='')}" for name, value in parameters.items())
    return url + ("&" if "?" in url else "?") + encoded


def _receive_all(
    consumer: cloudqueue.Consumer, count: int, *, ack: bool = True
) -> list[cloudqueue.ReceivedMessage]:
    got = collect(consumer, count, _ARRIVAL, ack=False)
    assert len(got) == count, f"received {len(got)} of {count} messages"
    if ack:
        for message in got:
            message.ack()
    return got


def _body_measuring(measure: Callable[[cloudqueue.Message], int], size: int) -> bytes:
    """An ASCII body whose message the driver measures at exactly ``size`` bytes."""
    length = size - measure(cloudqueue.Message(b""))
    for _ in range(8):  # measures are linear in the body; a few steps settle any framing
        got = measure(cloudqueue.Message(b"x" * length))
        if got == size:
            return b"x" * length
        length += size - got
    raise AssertionError(f"no body measures exactly {size} bytes (last: {got})")


class LargePayloads(SuiteBase):
    """Claim-check offloading through one provider's destination and one store."""

    #: The stores every case runs with (schemes of :data:`STORE_SCHEMES`).
    payload_stores: ClassVar[Sequence[str]] = STORE_SCHEMES
    #: The stores the 50 MB round trip runs with; None: :attr:`payload_stores`.
    fifty_mb_stores: ClassVar[Sequence[str] | None] = None
    #: Where :func:`localstack_s3_endpoint` installs LocalStack for ``s3``.
    localstack_venv: ClassVar[str | os.PathLike[str]] = ".venv-localstack"

    @classmethod
    def pytest_generate_tests(cls, metafunc: pytest.Metafunc) -> None:
        # Parametrized here, not on the fixture, so that one case can run on fewer stores.
        if "payload_storage" not in metafunc.fixturenames:
            return
        big = metafunc.definition.originalname == "test_round_trip_of_50_mb"
        stores = cls.payload_stores
        if big and cls.fifty_mb_stores is not None:
            stores = cls.fifty_mb_stores
        unknown = sorted(set(stores) - set(STORE_SCHEMES))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown stores {unknown}; known: {STORE_SCHEMES}")
        metafunc.parametrize("payload_storage", stores, indirect=True, scope="module")

    @pytest.fixture(scope="module")
    @classmethod
    def payload_storage(
        cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[PayloadStorage]:
        """One store's server for the module (``request.param`` is its scheme)."""
        scheme: str = request.param
        endpoint = request.getfixturevalue("s3_endpoint") if scheme == "s3" else None
        directory = tmp_path_factory.mktemp("payloads")
        with payload_storage_for(scheme, directory, s3_endpoint=endpoint) as storage:
            yield storage

    @pytest.fixture(scope="module")
    @classmethod
    def s3_endpoint(cls) -> Iterator[str]:
        """A LocalStack serving S3; override to hand over one the provider already runs."""
        with localstack_s3_endpoint(cls.localstack_venv) as endpoint:
            yield endpoint

    @pytest.fixture
    def payload_location(self, payload_storage: PayloadStorage) -> PayloadLocation:
        """A fresh location under its own prefix in the test's store."""
        return payload_storage.new_location()

    # -- round trips ---------------------------------------------------------------------

    def _round_trip(
        self, dest: Destination, where: PayloadLocation, size: int, offload: cloudqueue.Offload
    ) -> None:
        payload = _payload(size)
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            big_id, small_id = producer.send_batch([
                cloudqueue.Message(payload, attributes={"kind": "big"}),
                cloudqueue.Message(b"small", attributes={"kind": "small"}),
            ])
        assert len(where.stored()) == 1, "only the message over the limit is offloaded"
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            got = {message.id: message for message in _receive_all(consumer, 2)}
        big, small = got[big_id], got[small_id]
        assert big.body == payload  # whole, byte for byte
        assert big.attributes == {"kind": "big"}, "markers never reach the user"
        assert (small.body, small.attributes) == (b"small", {"kind": "small"})

    def test_round_trip_of_5_mb(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        # 5 MB fits some destinations (Pub/Sub takes 10 MB): a lower threshold offloads it.
        offload = payload_location.offload(threshold=_MB)
        self._round_trip(dest, payload_location, 5 * _MB, offload)

    def test_round_trip_of_50_mb(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        # Above every provider's limit: the default threshold offloads it.
        self._round_trip(dest, payload_location, 50 * _MB, payload_location.offload())

    def test_the_url_parameters_configure_offloading(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        """``offload`` (percent-encoded), ``offload_threshold`` and ``offload_delete`` in
        the URL do what the keyword arguments do; the provider never sees them."""
        parameters = {"offload": payload_location.location, "offload_threshold": "0"}
        producer_url = _with_parameters(dest.producer_url, **parameters)
        consumer_url = _with_parameters(dest.consumer_url, **parameters, offload_delete="true")
        with cloudqueue.open_producer(producer_url) as producer:
            producer.send(b"tiny but offloaded")
        (uri,) = payload_location.stored()
        with cloudqueue.open_consumer(consumer_url) as consumer:
            (message,) = _receive_all(consumer, 1)
            assert message.body == b"tiny but offloaded"
        assert not payload_location.stored(), f"{uri} outlived the ack with offload_delete=true"

    def test_a_url_parameter_and_an_argument_together_are_refused(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        url = _with_parameters(dest.producer_url, offload=payload_location.location)
        with pytest.raises(cloudqueue.InvalidArgument, match="offload"):
            cloudqueue.open_producer(url, offload=payload_location.offload())

    # -- the threshold ---------------------------------------------------------------------

    def test_a_body_at_the_threshold_stays_inline_and_one_byte_more_is_offloaded(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        threshold = 2_000
        with cloudqueue.open_producer(dest.producer_url) as plain:
            at = _body_measuring(plain.measure, threshold)
            over = _body_measuring(plain.measure, threshold + 1)
        offload = payload_location.offload(threshold=threshold)
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            at_id = producer.send(at)
            assert not payload_location.stored(), "a message at the threshold is sent as is"
            over_id = producer.send(over)
            assert len(payload_location.stored()) == 1, "one byte over: offloaded"
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            got = {message.id: message.body for message in _receive_all(consumer, 2)}
        assert got == {at_id: at, over_id: over}

    def test_the_default_threshold_is_the_destinations_limit(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        with cloudqueue.open_producer(dest.producer_url) as plain:
            limit = plain.capabilities.limits.max_message_bytes
            at = _body_measuring(plain.measure, limit)
            over = _body_measuring(plain.measure, limit + 1)
        with cloudqueue.open_producer(
            dest.producer_url, offload=payload_location.offload()
        ) as producer:
            at_id = producer.send(at)
            assert not payload_location.stored(), f"{limit} bytes fit: sent as is"
            over_id = producer.send(over)  # refused as MessageTooLarge without offloading
            assert len(payload_location.stored()) == 1
        with cloudqueue.open_consumer(
            dest.consumer_url, offload=payload_location.offload()
        ) as consumer:
            got = {message.id: message.body for message in _receive_all(consumer, 2)}
        assert got == {at_id: at, over_id: over}

    def test_threshold_zero_offloads_every_message(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        offload = payload_location.offload(threshold=0)
        bodies = [b"a", b"bb", "caf\u00e9".encode()]
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            producer.send_batch([cloudqueue.Message(body) for body in bodies])
        assert len(payload_location.stored()) == 3
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            got = [message.body for message in _receive_all(consumer, 3)]
        assert sorted(got) == sorted(bodies)

    # -- failures ----------------------------------------------------------------------------

    def test_store_down_on_send_sends_nothing_and_is_retryable(
        self, dest: Destination, harness: Harness, payload_location: PayloadLocation
    ) -> None:
        offload = payload_location.offload(threshold=1_000)
        no_retries = cloudqueue.RetryPolicy(deadline=0.0)
        with cloudqueue.open_producer(
            dest.producer_url, offload=offload, retry=no_retries
        ) as producer:
            with payload_location.unreachable():
                with pytest.raises(cloudqueue.QueueError) as alone:
                    producer.send(_payload(5_000))
                with pytest.raises(cloudqueue.SendBatchError) as batch:
                    producer.send_batch([
                        cloudqueue.Message(b"fits"), cloudqueue.Message(_payload(5_000)),
                    ])
        retryable = payload_location.outage_retryable
        assert alone.value.retryable is retryable, f"retryable should be {retryable}: {alone.value!r}"
        small, big = batch.value.results
        assert isinstance(small, str), "the message that needs no store is sent"
        assert isinstance(big, cloudqueue.QueueError) and big.retryable is retryable, big
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            (only,) = _receive_all(consumer, 1)
            assert (only.id, only.body) == (small, b"fits")
            assert not quiet_for(consumer, 1.0 + harness.timer_slack), "nothing half-sent"
        assert not payload_location.stored()

    def test_a_deleted_object_fails_that_message_only(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        offload = payload_location.offload(threshold=1_000)
        kept = _payload(5_000)
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            lost_id = producer.send(_payload(5_000))
            (lost_uri,) = payload_location.stored()
            kept_id, small_id = producer.send_batch(
                [cloudqueue.Message(kept), cloudqueue.Message(b"small")]
            )
        payload_location.remove(lost_uri)
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            got = {message.id: message for message in _receive_all(consumer, 3, ack=False)}
            lost = got[lost_id]
            with pytest.raises(PayloadUnavailable) as info:
                lost.body  # noqa: B018 - reading it is the point
            with pytest.raises(PayloadUnavailable):
                lost.text()
            assert (got[kept_id].body, got[small_id].body) == (kept, b"small")
            error = info.value
            assert error.message_id == lost_id
            key = lost_uri.rsplit("/", 1)[1]
            assert key in error.pointer and key in str(error), error
            assert not error.retryable, "a missing object will not come back"
            for message in got.values():  # the broken one is settled like any other
                message.ack()
            assert not quiet_for(consumer, 1.0), "the acks took"

    def test_a_pointer_outside_the_consumers_location_is_not_fetched(
        self, dest: Destination, payload_location: PayloadLocation,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        sent = _payload(5_000)
        with cloudqueue.open_producer(
            dest.producer_url, offload=payload_location.offload(threshold=1_000)
        ) as producer:
            sent_id = producer.send(sent)
        elsewhere = tmp_path_factory.mktemp("elsewhere").as_uri()
        with cloudqueue.open_consumer(
            dest.consumer_url, offload=cloudqueue.Offload(elsewhere)
        ) as consumer:
            (message,) = _receive_all(consumer, 1, ack=False)
            with pytest.raises(PayloadUnavailable) as info:
                message.body  # noqa: B018
            assert info.value.message_id == sent_id
            message.nack()
        with cloudqueue.open_consumer(dest.consumer_url) as unconfigured:
            (message,) = _receive_all(unconfigured, 1, ack=False)
            with pytest.raises(PayloadUnavailable, match="offload"):
                message.body  # noqa: B018
            message.nack()
        with cloudqueue.open_consumer(
            dest.consumer_url, offload=payload_location.offload()
        ) as consumer:
            (message,) = _receive_all(consumer, 1)
            assert message.body == sent

    # -- what settling does to the object ------------------------------------------------

    def test_ack_keeps_the_object_by_default(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        offload = payload_location.offload(threshold=0)
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            producer.send(b"keep my payload")
        stored = payload_location.stored()
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            (message,) = _receive_all(consumer, 1)
            assert message.body == b"keep my payload"
        assert payload_location.stored() == stored

    def test_ack_deletes_the_object_when_configured(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        offload = payload_location.offload(threshold=0, delete_after_ack=True)
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            producer.send_batch([cloudqueue.Message(b"one"), cloudqueue.Message(b"two")])
        assert len(payload_location.stored()) == 2
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            first, second = _receive_all(consumer, 2, ack=False)
            first.ack()
            # Acks travel in the background; the delete follows the ack's success.
            eventually(lambda: len(payload_location.stored()) == 1, _ARRIVAL)
            second.ack()
        eventually(lambda: not payload_location.stored(), _ARRIVAL)

    def test_nack_and_dead_letter_never_delete(
        self, make: Callable[..., Destination], harness: Harness,
        payload_location: PayloadLocation,
    ) -> None:
        dead_letters = harness.supports_dead_letter
        dest = make(dead_letter_after=harness.dead_letter_after_for_tests) if dead_letters \
            else make()
        offload = payload_location.offload(threshold=0, delete_after_ack=True)
        with cloudqueue.open_producer(dest.producer_url, offload=offload) as producer:
            sent_id = producer.send(b"settle me")
        stored = payload_location.stored()
        assert len(stored) == 1
        with cloudqueue.open_consumer(dest.consumer_url, offload=offload) as consumer:
            (first,) = _receive_all(consumer, 1, ack=False)
            first.nack()
            (again,) = _receive_all(consumer, 1, ack=False)
            assert again.id == sent_id and again.body == b"settle me"
            if dead_letters:
                again.dead_letter("keep the payload")
            else:
                again.nack()
        assert payload_location.stored() == stored
        if dead_letters:  # the dead letter still resolves, for whoever redrives it
            dead_url = cloudqueue.dead_letter_url(dest.consumer_url)
            with cloudqueue.open_consumer(dead_url, offload=offload) as consumer:
                (letter,) = _receive_all(consumer, 1)
                assert letter.body == b"settle me"

    # -- asyncio -----------------------------------------------------------------------------

    def test_async_round_trip_and_delete_after_ack(
        self, dest: Destination, payload_location: PayloadLocation
    ) -> None:
        payload = _payload(5 * _MB)
        offload = payload_location.offload(threshold=_MB, delete_after_ack=True)

        async def main() -> bytes:
            async with cloudqueue.aio.open_producer(dest.producer_url, offload=offload) as producer:
                await producer.send(payload)
            assert len(payload_location.stored()) == 1
            async with cloudqueue.aio.open_consumer(dest.consumer_url, offload=offload) as consumer:
                async with asyncio.timeout(_ARRIVAL):
                    async for message in consumer:
                        body = message.body
                        await message.ack()
                        return body
            raise AssertionError("the consumer stopped before a message came")

        assert asyncio.run(main()) == payload
        eventually(lambda: not payload_location.stored(), _ARRIVAL)

