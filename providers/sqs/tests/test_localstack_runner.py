"""The LocalStack runner: readiness, AWS-like SQS behaviour, clean teardown, reuse, CLI."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cloudqueue_sqs.testing import (
    ENDPOINT_ENV,
    LocalStack,
    LocalStackStartError,
    install_localstack,
    is_installed,
    venv_python,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def client_for(endpoint_url: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def process_gone(pid: int) -> bool:
    """True when no process has this pid, nor has it as its process group."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# -- readiness -----------------------------------------------------------------------------


def test_ready_server_reports_sqs_running(localstack: LocalStack) -> None:
    assert localstack.is_ready()
    health = localstack.health()
    assert health["services"]["sqs"] == "running"
    assert localstack.endpoint_url == f"http://127.0.0.1:{localstack.port}"


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) of sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)  # header
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                address, _, port_hex = local.rpartition(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    found.append(address)
    return found


def test_listens_on_loopback_only(localstack: LocalStack) -> None:
    addresses = _listening_addresses(localstack.port)
    assert addresses, f"nothing listens on port {localstack.port}"
    # 127.0.0.1 in /proc/net/tcp, and its IPv4-mapped form in tcp6.
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
    assert set(addresses) <= loopback, addresses


# -- SQS behaves like AWS ------------------------------------------------------------------


def test_standard_queue_send_receive_delete(sqs: Any, queue_name: str) -> None:
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    assert url.endswith(f"/{queue_name}")
    sqs.send_message(
        QueueUrl=url,
        MessageBody="hello \u00e9\U0001f600",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )
    received = sqs.receive_message(
        QueueUrl=url,
        WaitTimeSeconds=2,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )["Messages"]
    assert len(received) == 1
    message = received[0]
    assert message["Body"] == "hello \u00e9\U0001f600"
    assert message["MessageAttributes"]["kind"]["StringValue"] == "greeting"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []


def test_fifo_queue_orders_and_deduplicates(sqs: Any, queue_name: str) -> None:
    url = sqs.create_queue(
        QueueName=f"{queue_name}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
    )["QueueUrl"]
    sequence_numbers = []
    for index in range(3):
        sent = sqs.send_message(
            QueueUrl=url,
            MessageBody=f"m{index}",
            MessageGroupId="g",
            MessageDeduplicationId=f"d{index}",
        )
        sequence_numbers.append(int(sent["SequenceNumber"]))
    duplicate = sqs.send_message(
        QueueUrl=url, MessageBody="m0 again", MessageGroupId="g", MessageDeduplicationId="d0"
    )
    assert sequence_numbers == sorted(sequence_numbers)
    assert duplicate["MessageId"] is not None

    bodies = []
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in batch.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(bodies) >= 3:
            break
    assert bodies == ["m0", "m1", "m2"]  # in order, and the duplicate was dropped


def test_fifo_queue_requires_group_id(sqs: Any, queue_name: str) -> None:
    url = sqs.create_queue(
        QueueName=f"{queue_name}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="no group")
    assert raised.value.response["Error"]["Code"] == "MissingParameter"


def test_nul_in_body_is_rejected_like_aws(sqs: Any, queue_name: str) -> None:
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="before\x00after")
    assert raised.value.response["Error"]["Code"] == "InvalidMessageContents"


def test_invalid_entry_fails_alone_in_a_batch(sqs: Any, queue_name: str) -> None:
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "good", "MessageBody": "fine"},
            {"Id": "bad", "MessageBody": "\x00"},
        ],
    )
    assert [entry["Id"] for entry in result["Successful"]] == ["good"]
    assert [(entry["Id"], entry["Code"]) for entry in result["Failed"]] == [
        ("bad", "InvalidMessageContents")
    ]


# -- teardown ------------------------------------------------------------------------------


def test_stop_leaves_no_process_and_frees_the_port(localstack_venv: Path) -> None:
    server = LocalStack(localstack_venv, use_env=False)
    with server:
        pid, port = server.pid, server.port
        assert pid is not None
        workdir = server.log_path.parent if server.log_path else None
        client_for(server.endpoint_url).create_queue(QueueName="teardown")
    assert server.pid is None
    assert process_gone(pid)
    assert port_closed(port)
    assert workdir is not None and not workdir.exists()
    server.stop()  # idempotent


def test_failed_start_kills_the_process(
    localstack_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self.pid)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    # Far too short to get ready: the start must fail, and clean up after itself.
    server = LocalStack(localstack_venv, use_env=False, start_timeout=0.2)
    with pytest.raises(LocalStackStartError, match="did not report sqs, sns, sts, s3 running"):
        server.start()
    assert started
    assert all(process_gone(pid) for pid in started)
    assert server.pid is None


def _crashing_venv(localstack_venv: Path, where: Path) -> Path:
    """A fake venv whose interpreter works for everything but LocalStack itself."""
    python = venv_python(where)
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ]; then echo "simulated crash: Address family boom"; exit 3; fi\n'
        f'exec "{venv_python(localstack_venv)}" "$@"\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return where


def test_early_exit_is_reported_with_the_log(localstack_venv: Path, tmp_path: Path) -> None:
    server = LocalStack(_crashing_venv(localstack_venv, tmp_path / "venv"), use_env=False,
                        start_timeout=30)
    started = time.monotonic()
    with pytest.raises(LocalStackStartError) as raised:
        server.start()
    assert time.monotonic() - started < 10  # noticed at once, not at the deadline
    assert "exited with code 3" in str(raised.value)
    assert "simulated crash" in str(raised.value)


def test_a_relative_venv_is_found_from_where_it_was_given(
    localstack_venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in its own temporary folder: a relative venv path must still
    # name the one next to the caller (as `.venv-localstack` does for the benchmarks).
    _crashing_venv(localstack_venv, tmp_path / "venv")
    monkeypatch.chdir(tmp_path)
    server = LocalStack(Path("venv"), use_env=False, start_timeout=30)
    with pytest.raises(LocalStackStartError, match="exited with code 3"):
        server.start()


def test_missing_venv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalStackStartError, match="install_localstack"):
        LocalStack(tmp_path / "nowhere", use_env=False).start()


# -- reuse and install ---------------------------------------------------------------------


def test_reuses_a_running_server_from_the_environment(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, localstack.endpoint_url)
    with LocalStack() as shared:
        assert shared.is_external
        assert shared.pid is None
        assert shared.endpoint_url == localstack.endpoint_url
    assert localstack.is_ready()  # leaving the block did not stop the shared server


def test_reusing_an_unreachable_server_fails_clearly() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]  # bound, not listening: connections are refused
        server = LocalStack(endpoint_url=f"http://127.0.0.1:{port}", start_timeout=0.5)
        with pytest.raises(LocalStackStartError, match="did not report sqs, sns, sts, s3 running"):
            server.start()


def test_install_is_idempotent(localstack_venv: Path) -> None:
    assert is_installed(localstack_venv)
    started = time.monotonic()
    assert install_localstack(localstack_venv) == venv_python(localstack_venv.absolute())
    assert time.monotonic() - started < 10


# -- command line --------------------------------------------------------------------------


def test_cli_run_serves_until_sigterm(localstack_venv: Path, tmp_path: Path) -> None:
    endpoint_file = tmp_path / "endpoint.txt"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    command = [
        sys.executable,
        "-m",
        "cloudqueue_sqs.testing",
        "run",
        "--venv",
        str(localstack_venv),
        "--endpoint-file",
        str(endpoint_file),
    ]
    runner = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: endpoint_file.exists() and endpoint_file.read_text() != "", 90)
        endpoint = endpoint_file.read_text().strip()
        client_for(endpoint).create_queue(QueueName="cli")
        port = int(endpoint.rsplit(":", 1)[1])
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    assert out.strip() == endpoint
    assert not endpoint_file.exists()
    assert port_closed(port)
