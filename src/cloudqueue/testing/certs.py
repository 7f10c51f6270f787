"""A throw-away self-signed certificate for local test servers on loopback.

Needs the ``cryptography`` package, imported only when called. The module uses
nothing else outside the standard library, so another interpreter (one
without cloudqueue installed, such as LocalStack's own environment) can run
this file by path: ``python certs.py OUT.pem`` writes key and certificate
into one PEM file.
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

__all__ = ["localhost_certificate", "write_combined_pem"]


def localhost_certificate(days: int = 30) -> tuple[bytes, bytes]:
    """A new key and self-signed certificate for localhost, 127.0.0.1 and ::1, as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        # Clients trust the file itself (verify=path): it must be its own CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def write_combined_pem(target: Path) -> Path:
    """Write a new key followed by its certificate into one PEM file."""
    key_pem, certificate_pem = localhost_certificate()
    target.write_bytes(key_pem + certificate_pem)
    return target


if __name__ == "__main__":
    write_combined_pem(Path(sys.argv[1]))
