"""Verify identity's access tokens in a Python service, with PyJWT.

Copy this file into your service (it needs `pyjwt[crypto]`). A `TokenVerifier` checks a
token's signature against identity's public keys (its JWKS, fetched and cached by
PyJWKClient), pins the algorithm, and checks the issuer, the audience, the expiry and the
type (`at+jwt`), then hands back an `AccessToken`.

A token bound to a DPoP key (its `cnf.jkt` claim, RFC 9449) is accepted only with a fresh
proof by that key for this request (`Dpop`): without the check, a stolen DPoP-bound token
would work here as a bearer token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

# The header `typ` of identity's access tokens (RFC 9068).
ACCESS_TOKEN_TYPE = "at+jwt"
# Without these claims a token is refused.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "sid"]
# DPoP proofs: asymmetric algorithms only, and how old a proof may be (seconds).
DPOP_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]
DPOP_MAX_AGE = 60


class InvalidToken(Exception):
    """The token is not one of identity's access tokens for this service, or it expired."""


class KeysUnavailable(Exception):
    """identity's JWKS could not be fetched: the token can be neither trusted nor refused."""


@dataclass(frozen=True)
class AccessToken:
    user_id: str
    session_id: str
    # Advisory: the user's roles when the token was issued (at most its lifetime ago). A role
    # that requires MFA is listed only in tokens of sessions at aal 2.
    roles: frozenset[str]
    # Assurance: 1 for one factor, 2 for two (NIST SP 800-63B); how the user signed in (RFC
    # 8176: "pwd", "otp", "mfa", ...).
    aal: int
    amr: frozenset[str]
    expires_at: int
    claims: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Dpop:
    """What a request with `Authorization: DPoP <token>` brings: its `DPoP` header, and its
    method and URL as the client called them (the public URL, without query)."""

    proof: str
    method: str
    url: str


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        algorithm: str = "RS256",
        leeway: int = 30,
        jwks_cache_seconds: int = 300,
    ) -> None:
        # issuer: IDENTITY_JWT_ISSUER (by default identity's IDENTITY_PUBLIC_URL);
        # audience: IDENTITY_JWT_AUDIENCE (by default "identity");
        # algorithm: IDENTITY_JWT_ALGORITHM, fixed here, never read from the token;
        # jwks_cache_seconds: at most IDENTITY_JWKS_MAX_AGE, so a new key is known before
        # identity signs with it.
        self.issuer = issuer
        self.audience = audience
        self.algorithm = algorithm
        self.leeway = leeway
        self._seen: dict[str, float] = {}  # DPoP proofs seen (one process; see the guide)
        self._seen_lock = threading.Lock()
        self.jwks = jwt.PyJWKClient(
            jwks_url or f"{issuer.rstrip('/')}/.well-known/jwks.json",
            lifespan=jwks_cache_seconds,
            timeout=5,
        )

    def verify(self, token: str, dpop: Dpop | None = None) -> AccessToken:
        """The verified token, or InvalidToken. Blocking (it may fetch the JWKS).

        `dpop`: the request's proof, if it used the DPoP scheme. A token bound to a key
        needs one by that key; a bearer token takes none.
        """
        try:
            # A kid the cached JWKS does not have refetches it (once per cooldown).
            key = self.jwks.get_signing_key_from_jwt(token)
            decoded = jwt.decode_complete(
                token,
                key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(str(exc)) from exc
        except (jwt.PyJWKClientError, jwt.PyJWKError, jwt.InvalidTokenError) as exc:
            raise InvalidToken(str(exc)) from exc
        if decoded["header"].get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken(f"not an access token (typ {decoded['header'].get('typ')!r})")
        claims = decoded["payload"]
        jkt = claims.get("cnf", {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
        if (jkt is None) != (dpop is None):
            raise InvalidToken("a DPoP-bound token needs the DPoP scheme, a bearer token Bearer")
        if jkt is not None and dpop is not None:
            self.check_dpop(dpop, token, jkt)
        return self.accept(claims)

    def check_dpop(self, dpop: Dpop, token: str, jkt: str) -> None:
        """RFC 9449 §4.3: the proof is signed by the key `jkt` names, for this request and
        this token, recent, and not seen before."""
        try:
            header = jwt.get_unverified_header(dpop.proof)
            jwk, algorithm = header.get("jwk"), header.get("alg")
            if header.get("typ") != "dpop+jwt" or algorithm not in DPOP_ALGORITHMS:
                raise InvalidToken("not a DPoP proof")
            if not isinstance(jwk, dict) or {"d", "p", "q", "k"} & set(jwk):
                raise InvalidToken("the proof must carry a public key")
            proof = jwt.decode(
                dpop.proof,
                jwt.PyJWK(jwk, algorithm).key,
                algorithms=[algorithm],
                options={"require": ["htm", "htu", "iat", "jti", "ath"]},
                leeway=self.leeway,
            )
        except (jwt.PyJWTError, jwt.PyJWKError, ValueError, TypeError) as exc:
            raise InvalidToken(f"bad DPoP proof: {exc}") from exc
        if thumbprint(jwk) != jkt:
            raise InvalidToken("the proof is by another key than the token's")
        if proof["htm"] != dpop.method or proof["htu"].split("?")[0] != dpop.url:
            raise InvalidToken("the proof is for another request")
        if abs(time.time() - proof["iat"]) > DPOP_MAX_AGE + self.leeway:
            raise InvalidToken("the proof is not recent")
        if proof["ath"] != _b64(hashlib.sha256(token.encode()).digest()):
            raise InvalidToken("the proof is for another token")
        now = time.time()
        with self._seen_lock:
            self._seen = {jti: t for jti, t in self._seen.items() if t > now}
            if proof["jti"] in self._seen:
                raise InvalidToken("the proof was used already")
            self._seen[proof["jti"]] = now + DPOP_MAX_AGE + 2 * self.leeway

    def accept(self, claims: dict[str, Any]) -> AccessToken:
        """The one place that reads claims: a check this service needs goes here."""
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise InvalidToken("roles must be a list of names")
        aal = claims.get("aal", 1)  # a token without it proves one factor at most
        if aal not in (1, 2) or isinstance(aal, bool):
            raise InvalidToken("aal must be 1 or 2")
        amr = claims.get("amr", [])
        if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
            raise InvalidToken("amr must be a list of methods")
        return AccessToken(
            user_id=claims["sub"],
            session_id=claims["sid"],
            roles=frozenset(roles),
            aal=aal,
            amr=frozenset(amr),
            expires_at=claims["exp"],
            claims=claims,
        )


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: the SHA-256 of the key's required members, in order, without spaces."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    required = members.get(jwk.get("kty", ""))
    if required is None:
        raise InvalidToken("unsupported DPoP key type")
    canonical = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
