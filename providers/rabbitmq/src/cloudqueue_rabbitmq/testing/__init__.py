"""Test infrastructure for the RabbitMQ provider: a private RabbitMQ broker as a host process.

Runs the system's ``rabbitmq-server`` (Debian/Ubuntu: ``apt-get install rabbitmq-server``; no
Docker, no system service) on free 127.0.0.1 ports with its own data in a temporary folder::

    from cloudqueue_rabbitmq.testing import RabbitMqServer

    with RabbitMqServer() as rabbit:                 # about 5 s to ready
        url = rabbit.url + "?queue=orders"           # amqp://cloudqueue:<random>@127.0.0.1:PORT/

``python -m cloudqueue_rabbitmq.testing run`` runs one from the command line.
"""

from ._layout import NodePorts
from ._server import SERVER_ENV, RabbitMqServer, RabbitMqServerError, find_rabbitmq_server

__all__ = ["SERVER_ENV", "NodePorts", "RabbitMqServer", "RabbitMqServerError", "find_rabbitmq_server"]
