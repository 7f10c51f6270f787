"""cloudqueue provider for RabbitMQ (AMQP 0.9.1): ``amqp://`` and ``amqps://`` URLs."""

from .provider import RabbitMqProvider

__all__ = ["RabbitMqProvider"]
