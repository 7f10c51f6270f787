"""Test infrastructure for the SQS provider: LocalStack as a plain host process.

LocalStack (SQS, SNS, STS and S3) runs from its own virtual environment, because it pins its own boto3::

    from cloudqueue_sqs.testing import LocalStack, install_localstack

    install_localstack(".venv-localstack")          # once; idempotent, about 15-20 s
    with LocalStack(".venv-localstack") as server:  # about 1-3 s to ready
        client = boto3.client("sqs", endpoint_url=server.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")

Set ``CLOUDQUEUE_SQS_ENDPOINT=http://127.0.0.1:PORT`` to make :class:`LocalStack` reuse a server
that is already running (for example one started by CI with
``python -m cloudqueue_sqs.testing run --venv DIR --port PORT``).
"""

from ._errors import LocalStackError, LocalStackInstallError, LocalStackStartError
from ._install import (
    LOCALSTACK_REQUIREMENTS,
    LOCALSTACK_VERSION,
    install_localstack,
    is_installed,
    venv_python,
)
from ._server import ENDPOINT_ENV, LocalStack, free_loopback_port, localstack_environment

__all__ = [
    "ENDPOINT_ENV",
    "LOCALSTACK_REQUIREMENTS",
    "LOCALSTACK_VERSION",
    "LocalStack",
    "LocalStackError",
    "LocalStackInstallError",
    "LocalStackStartError",
    "free_loopback_port",
    "install_localstack",
    "is_installed",
    "localstack_environment",
    "venv_python",
]
