"""Tokens a consuming service must refuse, signed (or not) by keys of the test's own, and a
small JWKS server that publishes those keys (tests/test_consumers.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "http://identity.test"  # tests/test_server.py's IDENTITY_PUBLIC_URL


class Forger:
    """A JWKS server with keys of the test's own, and tokens signed (or not) by them."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published: dict[str, rsa.RSAPrivateKey] = {"forge-1": self.key}
        forger = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                keys = [forger.jwk(kid, key) for kid, key in forger.published.items()]
                body = json.dumps({"keys": keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.http.server_address[1]}/.well-known/jwks.json"

    @staticmethod
    def jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
        public: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**public, "kid": kid, "alg": "RS256", "use": "sig", "key_ops": ["verify"]}

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "identity",
            "sub": "0b6c7c0e-8d0e-4a43-9d4b-0b5a4b1f2f6e",
            "sid": "c3df67da-7ff7-4cad-8b61-9e579408f3d3",
            "jti": "forged",
            "iat": now,
            "exp": now + 900,
            "roles": ["user"],
            "aal": 1,
            "amr": ["pwd"],
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        kid: str = "forge-1",
        typ: str = "at+jwt",
        algorithm: str = "RS256",
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        return jwt.encode(
            claims, key or self.key, algorithm=algorithm, headers={"kid": kid, "typ": typ}
        )

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    if secret is None:
        return head + "."
    return head + "." + _b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def forgeries(forger: Forger) -> dict[str, str]:
    """Tokens a consumer must refuse, by what is wrong with them."""
    now = int(time.time())
    valid = forger.sign(forger.claims())
    head, _, signature = valid.split(".")
    tampered = _b64(json.dumps(forger.claims(roles=["admin"])).encode())
    public_pem = forger.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "expired": forger.sign(forger.claims(iat=now - 1000, exp=now - 100)),
        "another audience": forger.sign(forger.claims(aud="billing")),
        "no audience": forger.sign(forger.claims(aud=None)),
        "another issuer": forger.sign(forger.claims(iss="https://evil.example")),
        "typ JWT": forger.sign(forger.claims(), typ="JWT"),
        "no typ": forger.sign(forger.claims(), typ=""),
        "alg none": _unsigned({"alg": "none", "typ": "at+jwt", "kid": "forge-1"}, forger.claims()),
        "HS256 keyed with the public key": _unsigned(
            {"alg": "HS256", "typ": "at+jwt", "kid": "forge-1"}, forger.claims(), public_pem
        ),
        "RS384, not the pinned algorithm": forger.sign(forger.claims(), algorithm="RS384"),
        "an unknown kid": forger.sign(forger.claims(), kid="nobody"),
        "another key under the same kid": forger.sign(forger.claims(), key=other_key),
        "roles changed after signing": f"{head}.{tampered}.{signature}",
        "no sub": forger.sign(forger.claims(sub=None)),
        "no sid": forger.sign(forger.claims(sid=None)),
        "roles that are not a list": forger.sign(forger.claims(roles="admin")),
        "an aal that is not 1 or 2": forger.sign(forger.claims(aal=3)),
        "an aal that is text": forger.sign(forger.claims(aal="2")),
        "amr that is not a list": forger.sign(forger.claims(amr="otp")),
    }
