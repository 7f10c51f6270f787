"""Token checks for a broker started with ``require_valid_tokens=True``.

Two kinds of token reach a Service Bus namespace, on ``$cbs`` put-token (AMQP) and in the
``Authorization`` header (administration HTTP):

* shared access signatures, ``SharedAccessSignature sr=<resource>&sig=<b64 hmac>&se=<expiry>&skn=<key name>``,
  made by the SDK from a connection string's key or an ``AzureNamedKeyCredential``, or given
  whole as an ``AzureSasCredential``: the signature is an HMAC-SHA256 with the named key over
  ``quote_plus(resource) + "\\n" + expiry``;
* bearer tokens from a ``TokenCredential`` (Entra ID in Azure). Here the issuer is the
  broker itself: :class:`BrokerTokenCredential` signs compact JWTs (HS256) with a secret only
  the broker and that credential know, audience ``https://servicebus.azure.net``.

What stays approximate: a token's resource (``sr``) is not compared with the entity a link
names, and no claim grants or denies Send/Listen/Manage rights: a valid token allows everything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs, quote_plus

from azure.core.credentials import AccessToken

__all__ = ["AUDIENCE", "BrokerTokenCredential", "TokenCheck"]

#: The audience the SDK's token scope ``https://servicebus.azure.net//.default`` stands for.
AUDIENCE = "https://servicebus.azure.net"
_SAS_PREFIX = "SharedAccessSignature "
_BEARER_PREFIX = "Bearer "
_TOKEN_LIFETIME = 3600  # seconds, as Entra ID tokens commonly last


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenCheck:
    """Knows the namespace's keys and the issuer secret; says what is wrong with a token."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = dict(keys)
        self._issuer_secret = secrets.token_bytes(32)

    def __repr__(self) -> str:
        return f"TokenCheck(key names={sorted(self._keys)})"

    def issue(self, scope: str, lifetime: int = _TOKEN_LIFETIME) -> AccessToken:
        """A bearer token for ``scope`` (the SDK asks for ``https://servicebus.azure.net//.default``)."""
        audience = scope.removesuffix(".default").rstrip("/")
        expires_on = int(time.time()) + lifetime
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"aud": audience, "exp": expires_on, "iss": "cloudqueue-test-broker"}
        body = _b64url(json.dumps(claims).encode())
        signed = f"{header}.{body}"
        signature = _b64url(hmac.new(self._issuer_secret, signed.encode(), hashlib.sha256).digest())
        return AccessToken(f"{signed}.{signature}", expires_on)

    def problem(self, token: str) -> str | None:
        """None for a valid token, else why it is refused (never quoting the token)."""
        # The SDK's administration client sends a connection string's signature as
        # "Bearer SharedAccessSignature ...": strip the scheme first.
        token = token.removeprefix(_BEARER_PREFIX)
        if token.startswith(_SAS_PREFIX):
            return self._sas_problem(token[len(_SAS_PREFIX):])
        if token.count(".") == 2:
            return self._jwt_problem(token)
        return "the token is neither a shared access signature nor a bearer token"

    def authorization_problem(self, header: str | None) -> str | None:
        if not header:
            return "the request has no Authorization header"
        return self.problem(header)

    def _sas_problem(self, text: str) -> str | None:
        fields = {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
        missing = [name for name in ("sr", "sig", "se", "skn") if not fields.get(name)]
        if missing:
            return f"the shared access signature lacks {', '.join(missing)}"
        key = self._keys.get(fields["skn"])
        if key is None:
            return "the shared access signature names a key this namespace does not have"
        try:
            expiry = int(fields["se"])
        except ValueError:
            return "the shared access signature's expiry (se) is not a number"
        wanted = hmac.new(
            key.encode(), f"{quote_plus(fields['sr'])}\n{expiry}".encode(), hashlib.sha256
        ).digest()
        try:
            given = base64.b64decode(fields["sig"], validate=True)
        except binascii.Error:
            return "the shared access signature's sig is not base64"
        if not hmac.compare_digest(wanted, given):
            return "the shared access signature does not match the key"
        if expiry < time.time():
            return "the shared access signature has expired"
        return None

    def _jwt_problem(self, token: str) -> str | None:
        signed, _, signature = token.rpartition(".")
        wanted = hmac.new(self._issuer_secret, signed.encode(), hashlib.sha256).digest()
        try:
            given = _unb64url(signature)
            claims: Any = json.loads(_unb64url(signed.partition(".")[2]))
        except (ValueError, binascii.Error):
            return "the bearer token is not a well-formed JWT"
        if not hmac.compare_digest(wanted, given):
            return "the bearer token was not issued by this broker"
        if not isinstance(claims, dict) or claims.get("aud") != AUDIENCE:
            return f"the bearer token's audience is not {AUDIENCE}"
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            return "the bearer token has expired"
        return None


class BrokerTokenCredential:
    """A ``TokenCredential`` whose tokens the broker accepts: stands in for an azure-identity
    credential in tests. Counts ``get_token`` and ``close`` calls, so a test can tell its
    credential was the one used, and not closed by code that does not own it."""

    def __init__(self, check: TokenCheck) -> None:
        self._check = check
        self._lock = threading.Lock()
        self.token_requests = 0
        self.scopes: list[str] = []
        self.close_calls = 0

    def __repr__(self) -> str:
        return f"BrokerTokenCredential(token_requests={self.token_requests})"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if not scopes:
            raise ValueError("get_token needs a scope")
        with self._lock:
            self.token_requests += 1
            self.scopes.append(scopes[0])
        return self._check.issue(scopes[0])

    def close(self) -> None:
        with self._lock:
            self.close_calls += 1

    def __enter__(self) -> BrokerTokenCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
