"""DPoP-bound `me`: sessions bound to a key each, and a fresh proof for every request.

A proof is good for one request, so the scenario cannot replay one: for each run, every
connection's session gets as many proofs as the run could use, made here (ES256, with PyJWT)
just before wrk starts. They stay fresh for `IDENTITY_DPOP_PROOF_MAX_AGE` plus the leeway
(90 s by default), longer than a run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

LOGIN = """mutation($i: LoginInput!) {
  login(input: $i) { __typename ... on AuthPayload { accessToken tokenType } }
}"""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Key:
    """A client's DPoP key pair."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))

    def proof(self, url: str, access_token: str | None = None) -> str:
        claims: dict[str, Any] = {
            "htm": "POST",
            "htu": url,
            "iat": int(time.time()),
            "jti": uuid.uuid4().hex,
        }
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode()).digest())
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self.private, algorithm="ES256", headers=headers)


def bound_sessions(server_url: str, emails: list[str], password: str) -> list[tuple[Key, str]]:
    """A session bound to a new key for each address: (key, access token)."""
    url = f"{server_url}/graphql"

    def one(client: httpx.Client, email: str) -> tuple[Key, str]:
        key = Key()
        variables = {"i": {"email": email, "password": password}}
        body = client.post(
            "/graphql",
            json={"query": LOGIN, "variables": variables},
            headers={"DPoP": key.proof(url)},
        ).json()
        payload = (body.get("data") or {}).get("login") or {}
        if payload.get("tokenType") != "DPoP":
            raise RuntimeError(f"DPoP login {email} failed: {body}")
        return key, payload["accessToken"]

    with httpx.Client(base_url=server_url, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda email: one(client, email), emails))


def proof_lines(sessions: list[tuple[Key, str]], url: str, per_session: int) -> list[str]:
    """`token proof` lines, the sessions interleaved, `per_session` proofs each."""
    return [
        f"{token} {key.proof(url, token)}" for _ in range(per_session) for key, token in sessions
    ]
