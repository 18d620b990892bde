"""identity as a relying party of other OpenID Connect providers (OpenID Connect Core 1.0,
§3.1, the authorization code flow): discovery, the authorization request with PKCE, state
and nonce, the code exchange, the ID token and, when the ID token lacks the address, userinfo.

Written on httpx and PyJWT (identity's JOSE library already). The ID token is checked as
§3.1.3.7 says: a key of the provider's JWKS, the one algorithm configured for the provider
(which its metadata must list; never the token's own say), iss, aud, azp, exp, iat, nonce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from identity.security.oidc_providers import OidcProviderSettings, secure_url

log = logging.getLogger("identity.external")

METADATA_TTL = 3600.0  # seconds a discovery document or JWKS is kept
JWKS_RELOAD_AFTER = 60.0  # an unknown kid fetches the JWKS again, at most this often
MAX_RESPONSE = 512 * 1024
STATE_SEAL = "external-login-state"  # what identity keeps of a sign-in under way, sealed
_TENANT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ProviderError(Exception):
    """The provider could not be used, or its answer was not acceptable. The message is for
    logs (never a token or a secret), not for users."""


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth_methods: tuple[str, ...]
    iss_parameter: bool  # RFC 9207: the authorization response names its issuer


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who the provider says signed in."""

    subject: str
    email: str | None
    email_verified: bool
    given_name: str
    family_name: str


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """One configured provider. Discovery and keys are fetched when first needed and kept."""

    def __init__(self, settings: OidcProviderSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._metadata: tuple[float, Metadata] | None = None
        self._jwks: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.settings.id

    async def metadata(self) -> Metadata:
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata[0] > METADATA_TTL:
                self._metadata = (time.monotonic(), self._read_metadata(await self._discover()))
            return self._metadata[1]

    async def _discover(self) -> dict[str, Any]:
        return await self._json("GET", self.settings.discovery)

    def _read_metadata(self, doc: dict[str, Any]) -> Metadata:
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not self._issuer_acceptable(issuer):
            raise ProviderError(f"{self.id}: the discovery document names issuer {issuer!r}")
        urls = {}
        # Plain http only for a provider on this machine itself: an https provider cannot
        # send identity to a loopback service.
        local = not self.settings.discovery.startswith("https://")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            value = doc.get(name)
            if value is None and name == "userinfo_endpoint":
                continue
            if not isinstance(value, str) or not (
                value.startswith("https://") if not local else secure_url(value)
            ):
                raise ProviderError(f"{self.id}: {name} {value!r} is not an https URL")
            urls[name] = value
        algorithm = self.settings.id_token_algorithm
        algorithms = doc.get("id_token_signing_alg_values_supported") or []
        if algorithm not in algorithms:
            raise ProviderError(f"{self.id}: ID tokens are not offered signed {algorithm}")
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise ProviderError(f"{self.id}: PKCE with S256 is not supported")
        auth_methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return Metadata(
            issuer=issuer,
            authorization_endpoint=urls["authorization_endpoint"],
            token_endpoint=urls["token_endpoint"],
            jwks_uri=urls["jwks_uri"],
            userinfo_endpoint=urls.get("userinfo_endpoint"),
            token_auth_methods=tuple(m for m in auth_methods if isinstance(m, str)),
            iss_parameter=doc.get("authorization_response_iss_parameter_supported") is True,
        )

    def _issuer_acceptable(self, issuer: str) -> bool:
        if issuer == self.settings.expected_issuer:
            return True
        # Microsoft's multi-tenant discovery names the issuer of each tenant by a template.
        return (
            self.settings.issuer_names_tenant
            and issuer.count("{tenantid}") == 1
            and secure_url(issuer.replace("{tenantid}", "x"))
        )

    def authorization_url(
        self, metadata: Metadata, *, redirect_uri: str, state: str, nonce: str, challenge: str
    ) -> str:
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + urlencode(query)

    def check_response_issuer(self, metadata: Metadata, iss: str | None) -> None:
        """RFC 9207: an authorization response that names an issuer names this provider's
        (a mix-up with another provider shows here); one that should and does not is refused."""
        if iss is None:
            if metadata.iss_parameter:
                raise ProviderError(f"{self.id}: the authorization response names no issuer")
            return
        if not hmac.compare_digest(iss.encode(), metadata.issuer.encode()):
            raise ProviderError(f"{self.id}: the authorization response came from {iss!r}")

    async def sign_in(
        self, code: str, *, verifier: str, nonce: str, redirect_uri: str, now: datetime
    ) -> ExternalIdentity:
        """Trade the authorization code for tokens and say who signed in."""
        metadata = await self.metadata()
        tokens = await self._exchange(metadata, code, verifier, redirect_uri)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError(f"{self.id}: the token response has no ID token")
        claims = await self.verify_id_token(metadata, id_token, nonce, now)
        source = claims
        if "email" not in claims and metadata.userinfo_endpoint is not None:
            access_token = tokens.get("access_token")
            if not isinstance(access_token, str):
                raise ProviderError(f"{self.id}: the token response has no access token")
            source = await self._userinfo(metadata.userinfo_endpoint, access_token)
            # OpenID Connect Core §5.3.2: userinfo about someone else is not used.
            if source.get("sub") != claims["sub"]:
                raise ProviderError(f"{self.id}: userinfo is about another subject")
        email = source.get("email")
        return ExternalIdentity(
            subject=claims["sub"],
            email=email if isinstance(email, str) and email else None,
            email_verified=source.get("email_verified") is True,
            given_name=_text(source.get("given_name")) or _text(source.get("name")),
            family_name=_text(source.get("family_name")) if source.get("given_name") else "",
        )

    async def _exchange(
        self, metadata: Metadata, code: str, verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth: httpx.BasicAuth | None = None
        secret = self.settings.client_secret
        if secret is None:
            form["client_id"] = self.settings.client_id
        elif "client_secret_basic" in metadata.token_auth_methods:
            # RFC 6749 §2.3.1: both halves form-urlencoded before the Basic encoding.
            auth = httpx.BasicAuth(
                _form_encode(self.settings.client_id), _form_encode(secret.get_secret_value())
            )
        else:
            form["client_id"] = self.settings.client_id
            form["client_secret"] = secret.get_secret_value()
        return await self._json("POST", metadata.token_endpoint, data=form, auth=auth)

    async def _userinfo(self, url: str, access_token: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        return await self._json("GET", url, headers=headers)

    async def verify_id_token(
        self, metadata: Metadata, token: str, nonce: str, now: datetime
    ) -> dict[str, Any]:
        algorithm = self.settings.id_token_algorithm
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise ProviderError(f"{self.id}: the ID token is malformed ({exc})") from None
        if header.get("alg") != algorithm:
            raise ProviderError(f"{self.id}: the ID token is signed {header.get('alg')!r}")
        key = await self._key(metadata, header.get("kid"), algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.client_id,
                # Times and the issuer are checked below, against identity's clock.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_iss": False,
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                },
            )
        except jwt.PyJWTError as exc:
            raise ProviderError(f"{self.id}: the ID token was refused ({exc})") from None
        self._check_claims(metadata, claims, nonce, now)
        return claims

    def _check_claims(
        self, metadata: Metadata, claims: dict[str, Any], nonce: str, now: datetime
    ) -> None:
        issuer = metadata.issuer
        if "{tenantid}" in issuer:
            tenant = claims.get("tid")
            if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
                raise ProviderError(f"{self.id}: the ID token names no tenant")
            issuer = issuer.replace("{tenantid}", tenant)
        if claims["iss"] != issuer:
            raise ProviderError(f"{self.id}: the ID token was issued by {claims['iss']!r}")
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audience) > 1 or azp is not None) and azp != self.settings.client_id:
            raise ProviderError(f"{self.id}: the ID token was issued to {azp!r}")
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise ProviderError(f"{self.id}: the ID token's subject is unusable")
        given = claims.get("nonce")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
            raise ProviderError(f"{self.id}: the ID token's nonce is not this sign-in's")
        leeway, timestamp = 60, now.timestamp()
        for name in ("exp", "iat", "nbf"):
            if name in claims and not isinstance(claims[name], int | float):
                raise ProviderError(f"{self.id}: the ID token's {name} is not a time")
        if claims["exp"] + leeway <= timestamp:
            raise ProviderError(f"{self.id}: the ID token has expired")
        if claims["iat"] - leeway > timestamp or claims.get("nbf", 0) - leeway > timestamp:
            raise ProviderError(f"{self.id}: the ID token is not valid yet")

    async def _key(self, metadata: Metadata, kid: object, algorithm: str) -> jwt.PyJWK:
        """The provider's key for this kid and algorithm. An unknown kid fetches the JWKS
        again, once a minute at most: the provider may have rotated its keys."""
        async with self._lock:
            now, cached = time.monotonic(), self._jwks
            if (
                cached is None
                or now - cached[0] > METADATA_TTL
                or (
                    _find(cached[1], kid, algorithm) is None and now - cached[0] > JWKS_RELOAD_AFTER
                )
            ):
                cached = self._jwks = (now, await self._json("GET", metadata.jwks_uri))
        found = _find(cached[1], kid, algorithm)
        if found is None:
            raise ProviderError(f"{self.id}: no {algorithm} key {kid!r} in the provider's JWKS")
        try:
            return jwt.PyJWK(found, algorithm=algorithm)
        except jwt.PyJWTError as exc:
            raise ProviderError(f"{self.id}: the key {kid!r} is unusable ({exc})") from None

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """A JSON object from the provider: bounded in time and size, no redirects."""
        try:
            headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
            async with self.http.stream(method, url, headers=headers, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE:
                        raise ProviderError(f"{self.id}: {url} answered more than it should")
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.id}: {url} could not be reached ({exc!r})") from None
        if response.status_code != 200:
            error = _error_code(bytes(body))
            raise ProviderError(f"{self.id}: {url} answered HTTP {response.status_code} {error}")
        try:
            value = json.loads(body)
        except ValueError:
            raise ProviderError(f"{self.id}: {url} did not answer JSON") from None
        if not isinstance(value, dict):
            raise ProviderError(f"{self.id}: {url} did not answer a JSON object")
        return value


def _find(jwks: dict[str, Any], kid: object, algorithm: str) -> dict[str, Any] | None:
    """The signing key named `kid` (or the only one, when the token names none) that fits."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return None
    family = "OKP" if algorithm == "EdDSA" else "EC" if algorithm.startswith("ES") else "RSA"
    fitting = [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("kty") == family
        and key.get("use", "sig") == "sig"
        and key.get("alg", algorithm) == algorithm
    ]
    if kid is None:
        return fitting[0] if len(fitting) == 1 else None
    return next((key for key in fitting if key.get("kid") == kid), None)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _form_encode(value: str) -> str:
    return urlencode({"": value})[1:]


def _error_code(body: bytes) -> str:
    """The OAuth error code of an error response, for the log (never its description)."""
    try:
        value = json.loads(body)
    except ValueError:
        return ""
    error = value.get("error") if isinstance(value, dict) else None
    return error if isinstance(error, str) and re.fullmatch(r"[\w.-]{1,64}", error) else ""
