"""Azure Service Bus provider for cloudqueue.

``cloudqueue_azure_servicebus.testing`` holds a local Service Bus broker (AMQP 1.0 and
the administration HTTP surface) for tests that use the official ``azure-servicebus`` SDK.
"""

from ._sdk import ServiceBusSdk

__all__ = ["ServiceBusSdk"]
