"""Signing in with another OpenID Connect provider: the way there and back.

1. `start` (startExternalLogin): the app names a provider, where to come back to (on the
   allow-list) and the S256 challenge of a verifier it keeps. identity stores a state (10
   minutes, single use; bound to the user for a `link` start, which needs re-authentication)
   holding the app's challenge, a nonce and, sealed, identity's own PKCE verifier towards the
   provider, and answers the provider's authorization URL.
2. `returned` (GET /login/external/{provider}/callback): the provider sends the browser back
   with a code and the state. identity spends the state, trades the code for tokens, checks
   the ID token, and sends the browser to `returnTo#code=…`: a one-time code (5 minutes)
   that carries who signed in and is worthless without the app's verifier. A tampered,
   expired or used state, or a refusal by the provider, goes to `returnTo#error=…` and
   issues nothing.
3. services.external_accounts finishes: the code of a sign-in start signs in, the code of a
   link start links.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from identity.db.models import Challenge
from identity.security.derive import read_token
from identity.security.oidc_client import (
    STATE_SEAL,
    ExternalIdentity,
    OidcClient,
    ProviderError,
    s256,
)
from identity.security.oidc_providers import OidcProviderSettings
from identity.services.challenges import EXTERNAL_LINK, EXTERNAL_SIGN_IN, EXTERNAL_STATE, Challenges
from identity.services.errors import (
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    ValidationFailed,
)
from identity.services.principal import Principal
from identity.services.reauth import SIGN_IN_AGAIN, Reauthentication
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

log = logging.getLogger("identity.external")

CALLBACK_PATH = "/login/external/{provider}/callback"
# What `returnTo#error=…` says: the state was not this flow's (tampered, expired or used);
# the person declined at the provider; or the provider's answer could not be used.
INVALID_STATE = "invalid_state"
ACCESS_DENIED = "access_denied"
PROVIDER_ERROR = "provider_error"
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest, unpadded
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    name: str


class ExternalProviders:
    """The configured providers, each with its client; one HTTP client for all of them."""

    def __init__(self, rt: Runtime, http: httpx.AsyncClient | None) -> None:
        self.rt = rt
        self.http = http
        self.clients = {
            provider.id: OidcClient(provider, http)
            for provider in rt.settings.oidc_providers
            if http is not None
        }

    def use_http(self, http: httpx.AsyncClient) -> None:
        """Talk to the providers through another client (tests: a provider of their own)."""
        self.http = http
        for client in self.clients.values():
            client.http = http

    def listed(self) -> list[Provider]:
        return [Provider(id=c.id, name=c.settings.display_name) for c in self.clients.values()]

    def client(self, provider_id: str) -> OidcClient | None:
        return self.clients.get(provider_id)

    def settings(self, provider_id: str) -> OidcProviderSettings | None:
        client = self.clients.get(provider_id)
        return client.settings if client is not None else None

    def redirect_uri(self, provider_id: str) -> str:
        path = CALLBACK_PATH.format(provider=provider_id)
        return self.rt.settings.public_url + path

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()


class ExternalLogin:
    def __init__(
        self,
        rt: Runtime,
        providers: ExternalProviders,
        challenges: Challenges,
        reauth: Reauthentication,
        throttle: Throttle,
    ) -> None:
        self.rt = rt
        self.providers = providers
        self.challenges = challenges
        self.reauth = reauth
        self.throttle = throttle

    async def start(
        self,
        uow: UnitOfWork,
        principal: Principal | None,
        *,
        provider: str,
        return_to: str,
        code_challenge: str,
        link: bool,
        password: str | None,
    ) -> str:
        """The provider's authorization URL for a new sign-in (or, with `link`, a link)."""
        check = Checker()
        client = self.providers.client(provider)
        if client is None:
            check.fail("provider", "unknown_provider", "No sign-in provider has this id.")
        if return_to not in self.rt.settings.oidc_return_urls:
            check.fail("returnTo", "not_allowed", "This address is not on identity's list.")
        if not _CHALLENGE.fullmatch(code_challenge):
            check.fail(
                "codeChallenge",
                "invalid_challenge",
                "Give the base64url SHA-256 (S256) of a verifier your app keeps.",
            )
        check.done()
        assert client is not None
        # Counted before the provider is asked or a state is written (each lives ten minutes).
        await self.throttle.per_address(self.throttle.external_address, uow.client)
        try:
            metadata = await client.metadata()  # before any transaction: it may take a while
        except ProviderError as exc:
            log.warning("sign-in provider unavailable: %s", exc)
            raise ValidationFailed.one(
                "provider",
                "provider_unavailable",
                "This provider cannot be reached now. Try again later.",
            ) from None
        user = None
        if link:
            assert principal is not None  # the resolver demands a signed-in caller
            try:
                user = await self.reauth.confirm(uow, principal, password)
            except RateLimited:
                raise InvalidCredentials(f"Too many attempts. {SIGN_IN_AGAIN}") from None
        state_id = uuid.uuid4()
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
        sealed = self.rt.secret.seal(
            STATE_SEAL, json.dumps({"verifier": verifier}).encode(), state_id.bytes
        )
        issued = await self.challenges.issue(
            uow,
            EXTERNAL_STATE,
            user,
            challenge_id=state_id,
            sealed=sealed,
            data={
                "provider": provider,
                "return_to": return_to,
                "challenge": code_challenge,
                "link": link,
                "nonce": nonce,
            },
        )
        if user is not None:
            uow.audit.record(
                "external.link_started", actor=user.id, subject=user.id, provider=provider
            )
        await uow.commit()
        return client.authorization_url(
            metadata,
            redirect_uri=self.providers.redirect_uri(provider),
            state=issued.token,
            nonce=nonce,
            challenge=s256(verifier),
        )

    async def returned(
        self, uow: UnitOfWork, provider: str, params: Mapping[str, str]
    ) -> str | None:
        """Where the browser goes from identity's callback: `returnTo` with a one-time code
        or an error. None when not even the app is known (nothing to go back to)."""
        state = params.get("state", "")
        found = await self._state_row(uow, state)
        return_to = self._return_to(found)
        if return_to is None:
            return None
        try:
            row, user = await self.challenges.open(uow, state, EXTERNAL_STATE)
            if row.data.get("provider") != provider or row.sealed is None:
                raise InvalidToken()
            await self.challenges.spend(uow, row)
        except InvalidToken:
            await self._refused(uow, found, provider, INVALID_STATE)
            return f"{return_to}#error={INVALID_STATE}"
        await uow.commit()  # spent: whatever happens next, this state served once

        client = self.providers.client(provider)
        if params.get("error") is not None or client is None:
            reason = ACCESS_DENIED if params.get("error") == ACCESS_DENIED else PROVIDER_ERROR
            await self._refused(uow, row, provider, reason)
            return f"{return_to}#error={reason}"
        verifier = json.loads(self.rt.secret.unseal(STATE_SEAL, row.sealed, row.id.bytes))
        try:
            metadata = await client.metadata()
            client.check_response_issuer(metadata, params.get("iss"))
            code = params.get("code")
            if not code:
                raise ProviderError(f"{provider}: the authorization response has no code")
            who = await client.sign_in(
                code,
                verifier=verifier["verifier"],
                nonce=str(row.data.get("nonce")),
                redirect_uri=self.providers.redirect_uri(provider),
                now=self.rt.clock.now(),
            )
        except ProviderError as exc:
            log.warning("sign-in at another provider refused: %s", exc)
            await self._refused(uow, row, provider, PROVIDER_ERROR)
            return f"{return_to}#error={PROVIDER_ERROR}"
        issued = await self.challenges.issue(
            uow,
            EXTERNAL_LINK if row.data.get("link") else EXTERNAL_SIGN_IN,
            user,
            data={"provider": provider, "challenge": row.data["challenge"], **_claims(who)},
        )
        await uow.commit()
        return f"{return_to}#code={quote(issued.token, safe='')}"

    async def _state_row(self, uow: UnitOfWork, state: str) -> Challenge | None:
        """The stored state a token names, checked or not (to know where to go back)."""
        parts = read_token(state, 16)
        if parts is None:
            return None
        row = await uow.challenges.get(uuid.UUID(bytes=parts[0]))
        return row if row is not None and row.purpose == EXTERNAL_STATE else None

    def _return_to(self, row: Challenge | None) -> str | None:
        """The app's returnTo if it is still on the list; else the first on the list."""
        allowed = self.rt.settings.oidc_return_urls
        named = row.data.get("return_to") if row is not None else None
        if named in allowed:
            return str(named)
        return allowed[0] if allowed else None

    async def _refused(
        self, uow: UnitOfWork, row: Challenge | None, provider: str, reason: str
    ) -> None:
        uow.audit.record(
            "external.callback_refused",
            subject=row.user_id if row is not None else None,
            provider=provider[:32],
            reason=reason,
        )
        await uow.commit()


def check_verifier(verifier: str, challenge: object) -> bool:
    """The app's verifier is the one whose S256 challenge started this sign-in."""
    if not _VERIFIER.fullmatch(verifier or "") or not isinstance(challenge, str):
        return False
    return secrets.compare_digest(s256(verifier), challenge)


def _claims(who: ExternalIdentity) -> dict[str, object]:
    return {
        "subject": who.subject,
        "email": who.email,
        "email_verified": who.email_verified,
        "given_name": who.given_name,
        "family_name": who.family_name,
    }
