"""An OpenID Provider in the test process (an httpx transport), for the fast tests of
sign-in with other providers: every rule and every bad answer, without Node.js.

It does what a provider does (discovery, JWKS, the authorization endpoint as a function,
the token endpoint with client authentication and PKCE, userinfo) and can be told to
misbehave: ID tokens with other claims or headers, signed with another key, and so on.
The proof against a certified provider is tests/test_external_upstream.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://login.example.test"
CLIENT_ID = "identity-client"
CLIENT_SECRET = "s3cret:with/odd chars, long enough for HS256"


@dataclass
class Account:
    subject: str
    email: str | None
    email_verified: bool | None = True
    given_name: str = "Pat"
    family_name: str = "Provider"


@dataclass
class FakeProvider:
    issuer: str = ISSUER
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    # Knobs for misbehaviour.
    claims: dict[str, Any] = field(default_factory=dict)  # merged into every ID token
    header: dict[str, Any] = field(default_factory=dict)  # merged into its header
    sign_with: str = "rsa"  # rsa | ec | hs256 | none | other-rsa
    discovery: dict[str, Any] = field(default_factory=dict)  # merged into the document
    email_in_userinfo: bool = False  # claims by scope only from userinfo (oidc-provider's way)
    userinfo_sub: str | None = None
    down: bool = False
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, Account] = {}

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    # What the browser does at the provider ----------------------------------------------

    def authorize(self, url: str, account: Account, **extra: str) -> str:
        """The person signs in: the callback URL the provider sends the browser to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert url.startswith(f"{self.issuer}/authorize?"), url
        assert query["response_type"] == "code"
        assert query["client_id"] == self.client_id
        assert query["code_challenge_method"] == "S256"
        assert "openid" in query["scope"].split()
        code = secrets.token_urlsafe(16)
        self.codes[code] = {**query, "account": account}
        params = {"code": code, "state": query["state"], "iss": self.issuer, **extra}
        return f"{query['redirect_uri']}?{urlencode(params)}"

    def deny(self, url: str) -> str:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        params = {"error": "access_denied", "state": query["state"], "iss": self.issuer}
        return f"{query['redirect_uri']}?{urlencode(params)}"

    # Endpoints ----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.down:
            raise httpx.ConnectError("down", request=request)
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={**self.metadata(), **self.discovery})
        if path == "/jwks":
            return httpx.Response(200, json=self.jwks())
        if path == "/token" and request.method == "POST":
            return self.token(request)
        if path == "/userinfo":
            return self.userinfo(request)
        return httpx.Response(404, json={"error": "not_found"})

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "authorization_response_iss_parameter_supported": True,
            "response_types_supported": ["code"],
        }

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }

    def token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
        from urllib.parse import unquote_plus

        if (
            scheme != "Basic"
            or unquote_plus(client_id) != self.client_id
            or unquote_plus(secret) != self.client_secret
        ):
            return httpx.Response(401, json={"error": "invalid_client"})
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return httpx.Response(400, json={"error": "invalid_grant"})
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
            return httpx.Response(400, json={"error": "invalid_grant"})
        account: Account = grant["account"]
        access_token = secrets.token_urlsafe(16)
        self.access_tokens[access_token] = account
        id_token = self.id_token(account, nonce=grant["nonce"])
        return httpx.Response(
            200, json={"access_token": access_token, "token_type": "Bearer", "id_token": id_token}
        )

    def userinfo(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        account = self.access_tokens.get(token)
        if account is None:
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(
            200, json={**self.profile(account), "sub": self.userinfo_sub or account.subject}
        )

    def profile(self, account: Account) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "given_name": account.given_name,
            "family_name": account.family_name,
        }
        if account.email is not None:
            claims["email"] = account.email
        if account.email_verified is not None:
            claims["email_verified"] = account.email_verified
        return claims

    def id_token(self, account: Account, *, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": account.subject,
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            # A provider's own amr: identity must not take it for its own.
            "amr": ["pwd", "mfa"],
        }
        if not self.email_in_userinfo:
            claims.update(self.profile(account))
        claims.update(self.claims)
        claims = {k: v for k, v in claims.items() if v is not None}
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if self.sign_with == "ec":
            key, alg, kid = self.ec, "ES256", "ec-1"
        elif self.sign_with == "hs256":
            return jwt.encode(claims, self.client_secret, algorithm="HS256")
        elif self.sign_with == "none":
            head = base64.urlsafe_b64encode(b'{"alg":"none","kid":"rsa-1"}').rstrip(b"=")
            body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
            return f"{head.decode()}.{body.decode()}."
        elif self.sign_with == "other-rsa":
            key, alg, kid = self.other_rsa, "RS256", "rsa-1"
        else:
            key, alg, kid = self.rsa, "RS256", "rsa-1"
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, **self.header})
