"""Amazon SQS provider for cloudqueue.

Test infrastructure (a LocalStack server run as a plain host process) lives in
:mod:`cloudqueue_sqs.testing`.
"""
