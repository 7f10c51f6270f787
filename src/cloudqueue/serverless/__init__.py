"""Run the worker's handlers unchanged behind serverless triggers.

* :func:`aws_lambda` — AWS Lambda with an SQS event source (``ReportBatchItemFailures``)
  or an SNS trigger;
* :func:`azure_functions` — Azure Functions with a Service Bus trigger;
* :func:`pubsub_push` — an ASGI app for Pub/Sub push subscriptions and Eventarc
  (Cloud Run); :func:`pubsub_push_wsgi` is its WSGI twin.

A handler gets the same message type as in the worker. Where a trigger cannot do what
a message method asks (a nack delay, dead-lettering, lease extension), the method
raises :class:`cloudqueue.Unsupported` saying what to configure instead. See
docs/serverless.md.
"""

from ._azure import azure_functions
from ._http import pubsub_push, pubsub_push_wsgi
from ._lambda import aws_lambda
from ._trigger import HandlerFailed, MalformedEvent

__all__ = [
    "HandlerFailed",
    "MalformedEvent",
    "aws_lambda",
    "azure_functions",
    "pubsub_push",
    "pubsub_push_wsgi",
]
