"""DPoP proofs (RFC 9449): a JWT the client signs with its own key for each request.

PyJWT checks the signature with the public key the proof carries and the registered claims'
types; the rules of RFC 9449 §4.3 on top of it are ours: `typ` is `dpop+jwt`, the algorithm
is asymmetric and the one the key is for, the key is public, `htm` and `htu` name this
request, `iat` is recent, `jti` is new (the caller keeps a replay cache), `ath` is the hash
of the access token sent with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from jwt.exceptions import PyJWKError, PyJWTError

TYPE = "dpop+jwt"
# Asymmetric only: `none` and the HMAC algorithms would let anyone make a "proof".
ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"})
MAX_PROOF_SIZE = 8 * 1024
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


class InvalidProof(Exception):
    """The DPoP proof is missing, malformed, for another request, stale or replayed."""


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str  # RFC 7638 thumbprint of the proof's public key: what tokens are bound to
    jti: str
    iat: int


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: datetime,
    max_age: int,
    leeway: int,
    access_token: str | None = None,
) -> Proof:
    """Check a proof for one request (its replay is the caller's to check, by `jti`)."""
    if not proof or len(proof) > MAX_PROOF_SIZE or proof.count(".") != 2:
        raise InvalidProof("malformed")
    try:
        header = jwt.get_unverified_header(proof)
    except PyJWTError:
        raise InvalidProof("malformed header") from None
    if header.get("typ") != TYPE:
        raise InvalidProof("typ must be dpop+jwt")
    algorithm, key = header.get("alg"), header.get("jwk")
    if algorithm not in ALGORITHMS or not isinstance(key, dict):
        raise InvalidProof("an asymmetric alg and a jwk are required")
    if _PRIVATE_MEMBERS & set(key):
        raise InvalidProof("the jwk must be a public key")
    try:
        public = _public_key(key, algorithm)
        claims: dict[str, Any] = jwt.decode(
            proof,
            public.key,
            algorithms=[algorithm],
            options={"require": ["jti", "htm", "htu", "iat"], "verify_iat": False},
        )
    except (PyJWTError, PyJWKError, ValueError, TypeError):
        raise InvalidProof("bad signature or claims") from None
    if claims.get("htm") != method:
        raise InvalidProof("htm is not this request's method")
    try:
        same_target = isinstance(claims.get("htu"), str) and _target(claims["htu"]) == _target(url)
    except ValueError:  # a port out of range, an unclosed IPv6 bracket
        same_target = False
    if not same_target:
        raise InvalidProof("htu is not this request's URL")
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256 or not isinstance(iat, int):
        raise InvalidProof("jti or iat malformed")
    timestamp = int(now.timestamp())
    if iat > timestamp + leeway or iat < timestamp - max_age - leeway:
        raise InvalidProof("iat is not recent")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidProof("ath is not the hash of the access token")
    return Proof(jkt=thumbprint(key), jti=jti, iat=iat)


_KEYS: dict[tuple[str, str], jwt.PyJWK] = {}
_KEYS_MAX = 4096


def _public_key(jwk: dict[str, Any], algorithm: str) -> jwt.PyJWK:
    """The key of a proof's `jwk`, parsed once per key and algorithm (a client sends the same
    one with every request)."""
    cache_key = (json.dumps(jwk, sort_keys=True, separators=(",", ":")), algorithm)
    found = _KEYS.get(cache_key)
    if found is None:
        found = jwt.PyJWK(jwk, algorithm)
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        _KEYS[cache_key] = found
    return found


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise InvalidProof("unsupported jwk")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(access_token: str) -> str:
    return _b64(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def _target(url: str) -> tuple[str, str, str]:
    """A URL without query and fragment, as RFC 9449 compares `htu` (scheme and host in any
    case, the default port or none)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        netloc = f"[{host}]" if port in (None, default) else f"[{host}]:{port}"
    return scheme, netloc, urlunsplit(("", "", parts.path or "/", "", ""))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
