"""Amazon SQS and SNS providers for cloudqueue.

:class:`SqsSdk` carries your own boto3 session, config or clients (``sdk=`` next to an
``sqs://`` or ``sns://`` URL). Test infrastructure (a LocalStack server run as a plain
host process) lives in :mod:`cloudqueue_sqs.testing`.
"""

from ._sdk import SqsSdk

__all__ = ["SqsSdk"]
