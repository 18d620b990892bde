"""A DPoP key pair as a client keeps one, and the proofs it makes (RFC 9449), made with PyJWT
and `cryptography` as any client library would make them."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

URL = "http://testserver/graphql"  # the tests' IDENTITY_PUBLIC_URL and the endpoint


class Clock(Protocol):
    def now(self) -> Any: ...


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Holder:
    """A client's DPoP key pair, as a browser keeps one (the private half never leaves)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))

    @property
    def jkt(self) -> str:
        members = {m: self.jwk[m] for m in ("crv", "kty", "x", "y")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
        return b64(hashlib.sha256(canonical.encode()).digest())

    def proof(
        self,
        access_token: str | None = None,
        *,
        htm: str = "POST",
        htu: str = URL,
        age: float = 0,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {
            "htm": htm,
            "htu": htu,
            "iat": int(self.clock.now().timestamp() - age),
            "jti": uuid.uuid4().hex,
        }
        if access_token is not None:
            body["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
        body.update(claims)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(body, self.key, algorithm="ES256", headers=headers)
