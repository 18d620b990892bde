"""Verify identity's access tokens in a Python service, with PyJWT.

Copy this file into your service (it needs `pyjwt[crypto]`). A `TokenVerifier` checks a
token's signature against identity's public keys (its JWKS, fetched and cached by
PyJWKClient), pins the algorithm, and checks the issuer, the audience, the expiry and the
type (`at+jwt`), then hands back an `AccessToken`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt

# The header `typ` of identity's access tokens (RFC 9068).
ACCESS_TOKEN_TYPE = "at+jwt"
# Without these claims a token is refused.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "sid"]


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
        self.jwks = jwt.PyJWKClient(
            jwks_url or f"{issuer.rstrip('/')}/.well-known/jwks.json",
            lifespan=jwks_cache_seconds,
            timeout=5,
        )

    def verify(self, token: str) -> AccessToken:
        """The verified token, or InvalidToken. Blocking (it may fetch the JWKS)."""
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
        return self.accept(decoded["payload"])

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
