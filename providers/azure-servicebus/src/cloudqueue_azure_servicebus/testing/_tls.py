"""TLS for HTTP: the administration surface and AMQP over ``wss://``.

``azure-servicebus`` 7.15's administration client builds ``https://`` URLs even for
emulator connection strings (its generated client hard-codes the scheme; ``use_tls``
is ignored there), so the broker also answers TLS on the same port, with a
self-signed certificate made at start-up for localhost/127.0.0.1. Clients pass
``connection_verify=broker.certificate_path``. Inside TLS the same HTTP front door
serves WebSocket upgrades (``custom_endpoint_address`` clients). Plain AMQP stays
plain, as the emulator's.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from cloudqueue.testing.certs import localhost_certificate

from ._front_door import HttpFrontDoor
from ._state import BrokerState


def make_certificate(directory: str) -> tuple[str, str]:
    """Write a self-signed certificate and key for localhost; return their paths."""
    key_pem, certificate_pem = localhost_certificate()
    cert_path = os.path.join(directory, "broker-cert.pem")
    key_path = os.path.join(directory, "broker-key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(certificate_pem)
    with open(key_path, "wb") as fh:
        fh.write(key_pem)
    return cert_path, key_path


class TlsContext:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sb-broker-")
        self.cert_path, key_path = make_certificate(self._dir.name)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert_path, key_path)

    def cleanup(self) -> None:
        self._dir.cleanup()


class TlsHttpConnection:
    """HTTP over TLS with in-memory BIOs, so it fits the non-blocking socket loop."""

    def __init__(self, state: BrokerState, tls: TlsContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = tls.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.http = HttpFrontDoor(state)  # administration, or AMQP over wss://
        self.pending_out = bytearray()
        self.failed = False

    def feed(self, data: bytes) -> None:
        if not data:
            self.incoming.write_eof()
            self.http.feed(b"")
            return
        self.incoming.write(data)
        try:
            while True:
                chunk = self.tls.read(65536)
                if not chunk:
                    self.http.feed(b"")
                    break
                self.http.feed(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            self.failed = True
        self._pump()

    def _pump(self) -> None:
        plain = self.http.output()
        if plain and not self.failed:
            try:
                self.tls.write(plain)
                self.http.sent(len(plain))
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                self.failed = True
        self.pending_out += self.outgoing.read()

    def output(self) -> bytes:
        self._pump()
        return bytes(self.pending_out)

    def sent(self, count: int) -> None:
        del self.pending_out[:count]

    @property
    def output_closed(self) -> bool:
        return (self.failed or self.http.output_closed) and not self.pending_out

    def shutdown(self) -> None:
        self.http.shutdown()
