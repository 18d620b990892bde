"""Access tokens: JWTs signed with keys that every instance shares through the database.

A key is published in the JWKS from the moment it is created, signs from `activates_at`
until a newer key activates, and stays published until the last token it signed has
expired. Revoking a key drops it at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from identity.security.derive import ServerSecret, Unsealable

log = logging.getLogger("identity.keys")

ACCESS_TOKEN_TYPE = "at+jwt"
ALGORITHMS = ("RS256", "ES256", "EdDSA")
KEY_ENCRYPTION = "signing-key-encryption"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class InvalidAccessToken(Exception):
    pass


class UnknownKey(InvalidAccessToken):
    """Signed with a key this process does not know (yet: another instance may have made it)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    encrypted_private_key: bytes


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as the database holds it."""

    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    private_key: bytes
    created_at: datetime
    activates_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyState:
    kid: str
    algorithm: str
    created_at: datetime
    activates_at: datetime
    revoked_at: datetime | None
    state: str  # pending | active | retired | expired | revoked
    published_until: datetime | None


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: uuid.UUID
    sid: uuid.UUID
    kid: str
    jti: str
    exp: int
    iat: int
    jkt: str | None = None  # cnf.jkt: the DPoP key the token is bound to (RFC 9449)


def generate_key(algorithm: str, secret: ServerSecret) -> NewKey:
    private: PrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    elif algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        public_jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    else:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    kid = jwk_thumbprint(public_jwk)
    public_jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = secret.seal(KEY_ENCRYPTION, der, kid.encode())
    return NewKey(kid=kid, algorithm=algorithm, public_jwk=public_jwk, encrypted_private_key=sealed)


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(slots=True)
class _Key:
    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    public_key: Any
    private_key: Any  # None for a revoked key: it signs nothing, so it is not decrypted
    created_at: datetime
    activates_at: datetime
    revoked_at: datetime | None


class KeyRing:
    """The keys this process signs and verifies with; reloaded from the database."""

    def __init__(
        self,
        secret: ServerSecret,
        *,
        issuer: str,
        audience: str,
        access_token_ttl: int,
        leeway: int,
        algorithm: str | None = None,
    ) -> None:
        self._secret = secret
        # identity's own tokens prefer keys of this algorithm (IDENTITY_JWT_ALGORITHM); each
        # algorithm has its own signer, so an RS256 key can sign ID tokens beside it.
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.access_token_ttl = access_token_ttl
        self.leeway = leeway
        self._keys: dict[str, _Key] = {}
        self._ordered: list[_Key] = []
        self._verified: dict[str, AccessClaims] = {}
        self._signing_with: str | None = None

    def load(self, stored: Iterable[StoredKey]) -> None:
        keys: dict[str, _Key] = {}
        for row in stored:
            known = self._keys.get(row.kid)
            if known is not None and known.revoked_at == row.revoked_at:
                keys[row.kid] = known
                continue
            private, public = None, None
            if row.revoked_at is None:
                try:
                    der = self._secret.unseal(KEY_ENCRYPTION, row.private_key, row.kid.encode())
                except Unsealable:
                    raise Unsealable(f"signing key {row.kid}") from None
                private = serialization.load_der_private_key(der, password=None)
                public = private.public_key()
            else:  # kept known (its tokens are refused, not unknown), never in memory
                public = _VERIFIERS[row.algorithm].from_jwk(row.public_jwk)
            keys[row.kid] = _Key(
                kid=row.kid,
                algorithm=row.algorithm,
                public_jwk=row.public_jwk,
                public_key=public,
                private_key=private,
                created_at=row.created_at,
                activates_at=row.activates_at,
                revoked_at=row.revoked_at,
            )
        self._keys = keys
        self._ordered = sorted(keys.values(), key=lambda k: (k.activates_at, k.created_at))

    def _signer(self, now: datetime, algorithm: str | None = None) -> _Key | None:
        for key in reversed(self._ordered):
            usable = key.revoked_at is None and key.activates_at <= now
            if usable and (algorithm is None or key.algorithm == algorithm):
                return key
        return None

    def _own_signer(self, now: datetime) -> _Key | None:
        """What signs identity's access tokens: the newest key of the configured algorithm,
        else (before the first rotation after a change of algorithm) the newest key."""
        preferred = self._signer(now, self.algorithm) if self.algorithm else None
        return preferred or self._signer(now)

    def _published_until(self, key: _Key, now: datetime) -> datetime | None:
        """None while the key is pending or signing; else when it leaves the JWKS (a newer
        key of its algorithm replaced it, and its last token has expired)."""
        if key.activates_at > now:
            return None
        later = [
            k.activates_at
            for k in self._ordered
            if k.revoked_at is None
            and k.algorithm == key.algorithm
            and now >= k.activates_at > key.activates_at
        ]
        if not later:
            return None
        return min(later) + timedelta(seconds=self.access_token_ttl + self.leeway)

    def states(self, now: datetime) -> list[KeyState]:
        result = []
        for key in self._ordered:
            until = self._published_until(key, now)
            signer = self._signer(now, key.algorithm)
            if key.revoked_at is not None:
                state = "revoked"
            elif key.activates_at > now:
                state = "pending"
            elif key is signer:
                state = "active"
            elif until is not None and until > now:
                state = "retired"
            else:
                state = "expired"
            result.append(
                KeyState(
                    kid=key.kid,
                    algorithm=key.algorithm,
                    created_at=key.created_at,
                    activates_at=key.activates_at,
                    revoked_at=key.revoked_at,
                    state=state,
                    published_until=until,
                )
            )
        return result

    def has_signer(self, now: datetime) -> bool:
        return self._signer(now) is not None

    def jwks(self, now: datetime) -> dict[str, Any]:
        published = {s.kid for s in self.states(now) if s.state in ("pending", "active", "retired")}
        return {"keys": [k.public_jwk for k in self._ordered if k.kid in published]}

    def sign(
        self,
        *,
        sub: uuid.UUID,
        sid: uuid.UUID,
        roles: list[str],
        now: datetime,
        aal: int = 1,
        amr: list[str] | None = None,
        app_metadata: dict[str, Any] | None = None,
        jkt: str | None = None,
    ) -> str:
        key = self._own_signer(now)
        if key is None:
            raise RuntimeError("no active signing key; run `identity keys rotate`")
        if key.kid != self._signing_with:
            log.info("signing with key %s (%s)", key.kid, key.algorithm)
            self._signing_with = key.kid
        iat = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(sub),
            "sid": str(sid),
            "jti": uuid.uuid4().hex,
            "iat": iat,
            "exp": iat + self.access_token_ttl,
            "roles": roles,
            "aal": aal,
            "amr": amr if amr is not None else ["pwd"],
            # What admins set for other services to decide on (never the user's own metadata).
            "app_metadata": app_metadata or {},
        }
        if jkt is not None:  # sender-constrained: usable only with a DPoP proof by this key
            claims["cnf"] = {"jkt": jkt}
        # The JWS compact form, as PyJWT writes it, without its generic per-call work.
        header = {"alg": key.algorithm, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
        signature = _VERIFIERS[key.algorithm].sign(signing_input.encode(), key.private_key)
        return f"{signing_input}.{_b64(signature)}"

    def sign_claims(
        self, claims: dict[str, Any], *, typ: str, now: datetime, algorithm: str = "RS256"
    ) -> str:
        """A JWT of the OpenID Provider (ID tokens, client access tokens): always the newest
        signing key of `algorithm` (RS256 for OpenID Connect interoperability)."""
        key = self._signer(now, algorithm)
        if key is None:
            raise RuntimeError(
                f"no active {algorithm} signing key: the OpenID Provider needs one "
                "(IDENTITY_JWT_ALGORITHM=RS256, then `identity keys rotate`)"
            )
        header = {"alg": key.algorithm, "kid": key.kid, "typ": typ}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
        signature = _VERIFIERS[key.algorithm].sign(signing_input.encode(), key.private_key)
        return f"{signing_input}.{_b64(signature)}"

    def decode(
        self, token: str, now: datetime, *, typ: str, check_expiry: bool = True
    ) -> dict[str, Any]:
        """The claims of a token `sign_claims` made: a known, published key of the pinned
        algorithm, the type, the issuer and (unless told not to) the times. The audience is
        the caller's to check. Raises InvalidAccessToken."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidAccessToken("token too long")
        try:
            signing_input, _, signature = token.rpartition(".")
            encoded_header, _, encoded_payload = signing_input.partition(".")
            header = orjson.loads(_unb64(encoded_header))
            key = self._keys.get(header.get("kid", ""))
            if key is None or key.revoked_at is not None:
                raise InvalidAccessToken("unknown key")
            if header.get("alg") != key.algorithm or header.get("typ") != typ:
                raise InvalidAccessToken("wrong algorithm or token type")
            if not _VERIFIERS[key.algorithm].verify(
                signing_input.encode(), key.public_key, _unb64(signature)
            ):
                raise InvalidAccessToken("bad signature")
            payload: dict[str, Any] = orjson.loads(_unb64(encoded_payload))
            if not isinstance(payload, dict) or payload.get("iss") != self.issuer:
                raise InvalidAccessToken("wrong issuer")
            exp, iat = int(payload["exp"]), int(payload["iat"])
        except InvalidAccessToken:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as exc:
            raise InvalidAccessToken(f"malformed token: {type(exc).__name__}") from None
        timestamp = now.timestamp()
        if check_expiry and (exp + self.leeway <= timestamp or iat - self.leeway > timestamp):
            raise InvalidAccessToken("expired or issued in the future")
        return payload

    def verify(self, token: str, now: datetime) -> AccessClaims:
        """Check an access token; signature checks are remembered per token (not the rest).

        Every call checks that the key is still known, unrevoked and published, and the
        token's times against `now`.
        """
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if len(self._verified) >= _VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = claims
        key = self._keys.get(claims.kid)
        if key is None or key.revoked_at is not None:
            raise InvalidAccessToken("unknown key")
        until = self._published_until(key, now)
        if key.activates_at > now or (until is not None and until <= now):
            raise InvalidAccessToken("key not in use")
        timestamp = now.timestamp()
        if claims.exp + self.leeway <= timestamp:
            raise InvalidAccessToken("expired")
        if claims.iat - self.leeway > timestamp:
            raise InvalidAccessToken("issued in the future")
        return claims

    def _check_signature(self, token: str) -> AccessClaims:
        """Header, signature with the pinned algorithm of the named key, type, issuer, audience."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidAccessToken("token too long")
        try:
            signing_input, _, signature = token.rpartition(".")
            encoded_header, _, encoded_payload = signing_input.partition(".")
            header = orjson.loads(_unb64(encoded_header))
            key = self._keys.get(header.get("kid", ""))
            if key is None:
                raise UnknownKey("unknown key")
            if header.get("alg") != key.algorithm or header.get("typ") != ACCESS_TOKEN_TYPE:
                raise InvalidAccessToken("wrong algorithm or token type")
            verifier = _VERIFIERS[key.algorithm]
            if not verifier.verify(signing_input.encode(), key.public_key, _unb64(signature)):
                raise InvalidAccessToken("bad signature")
            payload = orjson.loads(_unb64(encoded_payload))
            if payload.get("iss") != self.issuer or payload.get("aud") != self.audience:
                raise InvalidAccessToken("wrong issuer or audience")
            if "client_id" in payload:  # an OAuth client's token: never identity's own
                raise InvalidAccessToken("a client's token")
            return AccessClaims(
                sub=uuid.UUID(payload["sub"]),
                sid=uuid.UUID(payload["sid"]),
                kid=key.kid,
                jti=str(payload["jti"]),
                exp=int(payload["exp"]),
                iat=int(payload["iat"]),
                jkt=_bound_key(payload),
            )
        except InvalidAccessToken:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as exc:
            raise InvalidAccessToken(f"malformed token: {type(exc).__name__}") from None


def _bound_key(payload: dict[str, Any]) -> str | None:
    cnf = payload.get("cnf")
    if cnf is None:
        return None
    jkt = cnf["jkt"] if isinstance(cnf, dict) else None
    if not isinstance(jkt, str):
        raise ValueError("cnf without a jkt")
    return jkt


_VERIFIED_CACHE = 10_000
# app_metadata (at most 4 KiB of JSON) is the largest part of a token: about 6 KiB in all.
MAX_TOKEN_LENGTH = 8192
_VERIFIERS = {
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "EdDSA": OKPAlgorithm(),
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    data = text.encode("ascii")
    return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)
