"""One driver's AMQP connection and channel, remade after they are lost.

Runs on the provider's loop thread only. A driver never shares its channel: delivery
tags belong to one channel, and a channel error (404 on a missing queue) closes only
that driver's channel. When the connection or channel is gone, the next call opens new
ones: the driver reconnects by itself, and the portable layer's retry of the failed call
is what brings it back. Nothing here retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from ._names import Broker

__all__ = ["CONNECT_TIMEOUT", "Link"]

#: How long opening a connection may take before the call fails as retryable.
CONNECT_TIMEOUT = 10.0


class Link:
    def __init__(self, broker: Broker, *, confirms: bool, name: str) -> None:
        self._broker = broker
        self._confirms = confirms
        self._name = name
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._lock: asyncio.Lock | None = None
        self.closed = False
        #: Bumped whenever a new channel is opened: settlements of deliveries from an
        #: older channel must not be sent (their tags mean nothing on the new one).
        self.generation = 0

    async def channel(self) -> AbstractChannel:
        """The live channel, opening a connection and channel when they are gone."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.closed:
                raise aio_pika.exceptions.ChannelInvalidStateError("the driver is closed")
            if self._channel is not None and not self._channel.is_closed:
                return self._channel
            connection = self._connection
            if connection is not None and not connection.is_closed:
                try:
                    return await self._open_channel(connection)
                except (RuntimeError, aiormq.exceptions.AMQPConnectionError):
                    # The broker closed the connection (aio-pika may not have noticed
                    # yet): replace it. Opening a channel changed nothing on the broker.
                    pass
            if connection is not None:
                await _quietly_close(connection)
            self._connection = None
            connection = self._connection = await self._connect()
            return await self._open_channel(connection)

    async def _open_channel(self, connection: AbstractConnection) -> AbstractChannel:
        channel = await connection.channel(
            publisher_confirms=self._confirms, on_return_raises=self._confirms
        )
        self._channel = channel
        self.generation += 1
        return channel

    def current(self) -> AbstractChannel | None:
        """The channel if it is still open, without opening one."""
        channel = self._channel
        return channel if channel is not None and not channel.is_closed else None

    def connections(self) -> tuple[AbstractConnection, ...]:
        connection = self._connection
        return () if connection is None else (connection,)

    async def _connect(self) -> AbstractConnection:
        broker = self._broker
        # Keyword arguments rather than a URL: the password never sits in a URL string
        # that aiormq might log or put in an exception.
        return await aio_pika.connect(
            host=broker.host,
            port=broker.port,
            login=broker.username,
            password=broker.password,
            virtualhost=broker.vhost,
            ssl=broker.tls,
            ssl_context=ssl.create_default_context() if broker.tls else None,
            timeout=CONNECT_TIMEOUT,
            client_properties={"connection_name": self._name},
            connection_class=_ClosedOnFailure,
        )

    async def close(self) -> None:
        self.closed = True
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await _quietly_close(connection)


class _ClosedOnFailure(aio_pika.Connection):
    """aio-pika leaves a connection that failed to open unclosed; its finaliser then makes
    a close() coroutine outside the loop that nobody awaits. Close it here instead."""

    async def connect(self, timeout: aio_pika.abc.TimeoutType = None) -> None:
        try:
            await super().connect(timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.close()
            raise


async def _quietly_close(connection: AbstractConnection) -> None:
    # Closing a broken connection may fail; it is gone either way.
    with contextlib.suppress(Exception):
        await connection.close()
