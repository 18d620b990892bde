"""The authorization endpoint's rules: the request, who is signed in, consent, the code.

The request is checked in two stages, as RFC 6749 §4.1.2.1 says: a client or redirect URI
that is unknown (or not registered exactly) is shown on an error page and never redirected
to; every other problem goes back to the client's redirect URI as `error=…`. A request that
needs the person (sign-in, second factor, consent) is kept as a challenge whose token the
hosted pages carry from form to form.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from identity.db.models import User
from identity.db.oauth_models import OAuthClient
from identity.services.challenges import OAUTH_CODE, OAUTH_REQUEST, Challenges
from identity.services.errors import InvalidToken
from identity.services.oauth_clients import OAuthClients
from identity.services.oauth_common import Hosted, allowed_scopes, parse_scope
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

PROMPTS = frozenset({"none", "login", "consent"})
LOGIN_PAGE, CONSENT_PAGE = "login", "consent"  # the page a kept request is for
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}\Z")  # base64url of a SHA-256 digest
_MAX_PARAM = 2048


class BadClient(Exception):
    """The client or its redirect URI cannot be trusted: an error page, no redirect."""


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str


@dataclass(frozen=True, slots=True)
class NeedsLogin:
    request: str  # the request's token, carried by the pages
    client: OAuthClient
    login_hint: str


@dataclass(frozen=True, slots=True)
class NeedsConsent:
    request: str
    client: OAuthClient
    scopes: list[str]


Outcome = Redirect | NeedsLogin | NeedsConsent


@dataclass(slots=True)
class Pending:
    """An authorization request under way (its challenge row's data)."""

    client: OAuthClient
    redirect_uri: str
    state: str | None
    data: dict[str, Any] = field(default_factory=dict)
    row_id: uuid.UUID | None = None  # the challenge it is kept in, once it is

    def error(self, issuer: str, error: str, description: str) -> Redirect:
        return Redirect(
            redirect_to(
                self.redirect_uri,
                {"error": error, "error_description": description, "state": self.state},
                issuer,
            )
        )


class Authorize:
    def __init__(self, rt: Runtime, challenges: Challenges, clients: OAuthClients) -> None:
        self.rt = rt
        self.challenges = challenges
        self.clients = clients

    @property
    def issuer(self) -> str:
        return self.rt.settings.issuer

    async def start(
        self, uow: UnitOfWork, params: dict[str, list[str]], hosted: Hosted | None
    ) -> Outcome:
        """A new authorization request (GET or POST to /oauth2/authorize)."""
        client_id, redirect_uri = _one(params, "client_id"), _one(params, "redirect_uri")
        client = await self.clients.find(uow, client_id or "")
        if client is None:
            raise BadClient("The app that sent you here is not known to us (unknown client_id).")
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            raise BadClient(
                "The app that sent you here gave a return address it has not registered "
                "(redirect_uri)."
            )
        pending = Pending(client=client, redirect_uri=redirect_uri, state=_one(params, "state"))
        problem = self._problem(params, client)
        if problem is not None:
            return pending.error(self.issuer, *problem)
        prompts = set((_one(params, "prompt") or "").split())
        max_age = _one(params, "max_age")
        acr = set((_one(params, "acr_values") or "").split())
        pending.data = {
            "client": str(client.id),
            "redirect_uri": redirect_uri,
            "state": pending.state,
            "scope": parse_scope(_one(params, "scope")),
            "nonce": _one(params, "nonce"),
            "code_challenge": _one(params, "code_challenge"),
            "prompt": sorted(prompts),
            "max_age": int(max_age) if max_age is not None else None,
            "aal2": "aal2" in acr,
            "login_hint": (_one(params, "login_hint") or "")[:254],
        }
        return await self.proceed(uow, pending, hosted, fresh=False)

    def _problem(self, params: dict[str, list[str]], client: OAuthClient) -> tuple[str, str] | None:
        repeated = sorted(k for k, v in params.items() if len(v) > 1)
        if repeated:
            return "invalid_request", f"Repeated parameter: {', '.join(repeated)}."
        if any(len(v[0]) > _MAX_PARAM for v in params.values()):
            return "invalid_request", "A parameter is too long."
        if "request" in params:
            return "request_not_supported", "Request objects are not supported."
        if "request_uri" in params:
            return "request_uri_not_supported", "request_uri is not supported."
        if _one(params, "response_type") != "code":
            return "unsupported_response_type", "Only response_type=code is supported."
        if _one(params, "response_mode") not in (None, "query"):
            return "invalid_request", "Only response_mode=query is supported."
        scopes = parse_scope(_one(params, "scope"))
        unknown = [s for s in scopes if s not in allowed_scopes(client)]
        if unknown:
            return "invalid_scope", f"Scope not allowed for this client: {' '.join(unknown)}."
        if not scopes:
            return "invalid_scope", "Ask for at least one scope (openid for OpenID Connect)."
        if _one(params, "code_challenge_method") != "S256":
            return "invalid_request", "PKCE is required: code_challenge_method=S256."
        if not CHALLENGE.match(_one(params, "code_challenge") or ""):
            return "invalid_request", "code_challenge must be the base64url SHA-256 of a verifier."
        prompts = set((_one(params, "prompt") or "").split())
        if not prompts <= PROMPTS or ("none" in prompts and len(prompts) > 1):
            return "invalid_request", "prompt is none, or any of login and consent."
        max_age = _one(params, "max_age")
        if max_age is not None and not re.fullmatch(r"[0-9]{1,9}", max_age):
            return "invalid_request", "max_age is a number of seconds."
        return None

    async def proceed(
        self, uow: UnitOfWork, pending: Pending, hosted: Hosted | None, *, fresh: bool
    ) -> Outcome:
        """What the request needs next. `fresh`: the person has just signed in (or answered
        the consent page) for this very request, so `prompt` and `max_age` are satisfied."""
        data = pending.data
        prompts = set(data["prompt"])
        if not fresh and self._needs_login(data, hosted):
            if "none" in prompts:
                return pending.error(self.issuer, "login_required", "The user must sign in.")
            return NeedsLogin(
                request=await self._keep(uow, pending, LOGIN_PAGE),
                client=pending.client,
                login_hint=data["login_hint"],
            )
        assert hosted is not None
        if await self._needs_consent(uow, pending, hosted.user):
            if "none" in prompts:
                return pending.error(self.issuer, "consent_required", "The user must consent.")
            # Kept for this page and this hosted session: the sign-in page's token cannot
            # answer it (skipping prompt=login or max_age), nor another session.
            request = await self._keep(uow, pending, CONSENT_PAGE, hosted.session.id)
            return NeedsConsent(request=request, client=pending.client, scopes=data["scope"])
        return await self._code(uow, pending, hosted)

    def _needs_login(self, data: dict[str, Any], hosted: Hosted | None) -> bool:
        if hosted is None or "login" in data["prompt"]:
            return True
        now = self.rt.clock.now()
        max_age = data["max_age"]
        if max_age is not None and hosted.session.authenticated_at < now - timedelta(
            seconds=max_age
        ):
            return True
        return bool(data["aal2"]) and hosted.session.aal < 2

    async def _needs_consent(self, uow: UnitOfWork, pending: Pending, user: User) -> bool:
        if pending.client.is_first_party:
            return False
        if "consent" in pending.data["prompt"]:  # only the consent page's answer satisfies it
            return True
        consent = await uow.oauth_clients.consent(user.id, pending.client.id)
        return consent is None or not set(pending.data["scope"]) <= set(consent.scopes)

    async def _keep(
        self, uow: UnitOfWork, pending: Pending, page: str, session: uuid.UUID | None = None
    ) -> str:
        """Keep the request for the next page (a new token for each page)."""
        await self._done(uow, pending)
        data = {**pending.data, "page": page, "page_session": str(session) if session else None}
        issued = await self.challenges.issue(uow, OAUTH_REQUEST, None, data=data)
        await uow.commit()
        return issued.token

    async def resume(self, uow: UnitOfWork, token: str) -> Pending:
        """The request behind a page's token (still live); InvalidToken otherwise."""
        row, _ = await self.challenges.open(uow, token, OAUTH_REQUEST)
        client = await uow.oauth_clients.get(uuid.UUID(row.data["client"]))
        if client is None or row.data["redirect_uri"] not in client.redirect_uris:
            raise InvalidToken()
        return Pending(
            client=client,
            redirect_uri=row.data["redirect_uri"],
            state=row.data["state"],
            data=dict(row.data),
            row_id=row.id,
        )

    async def consented(
        self, uow: UnitOfWork, pending: Pending, hosted: Hosted, allow: bool
    ) -> Outcome:
        """The consent page's answer."""
        data = pending.data
        if data.get("page") != CONSENT_PAGE or data.get("page_session") != str(hosted.session.id):
            raise InvalidToken()  # a token kept for another page, or another session's
        if not allow:
            await self._done(uow, pending)
            uow.audit.record(
                "oauth.consent_denied",
                actor=hosted.user.id,
                subject=hosted.user.id,
                client_id=pending.client.client_id,
            )
            await uow.commit()
            return pending.error(self.issuer, "access_denied", "The user declined.")
        now = self.rt.clock.now()
        await uow.oauth_clients.save_consent(
            hosted.user.id, pending.client.id, pending.data["scope"], now
        )
        uow.audit.record(
            "oauth.consent_given",
            actor=hosted.user.id,
            subject=hosted.user.id,
            client_id=pending.client.client_id,
            scopes=pending.data["scope"],
        )
        return await self._code(uow, pending, hosted)

    async def _done(self, uow: UnitOfWork, pending: Pending) -> None:
        """The request's challenge (if it was kept) is used up."""
        if pending.row_id is not None:
            if not await uow.challenges.use(pending.row_id, self.rt.clock.now()):
                raise InvalidToken()  # the same page sent twice: one answer only
            pending.row_id = None

    async def _code(self, uow: UnitOfWork, pending: Pending, hosted: Hosted) -> Redirect:
        await self._done(uow, pending)
        session = hosted.session
        data = pending.data
        issued = await self.challenges.issue(
            uow,
            OAUTH_CODE,
            hosted.user,
            data={
                "client": data["client"],
                "redirect_uri": data["redirect_uri"],
                "scope": data["scope"],
                "nonce": data["nonce"],
                "code_challenge": data["code_challenge"],
                "session": str(session.id),
                "auth_time": int(session.authenticated_at.timestamp()),
                "aal": session.aal,
                "amr": list(session.amr),
            },
        )
        await uow.commit()
        return Redirect(
            redirect_to(
                pending.redirect_uri, {"code": issued.token, "state": pending.state}, self.issuer
            )
        )


def redirect_to(uri: str, params: dict[str, str | None], issuer: str) -> str:
    """The client's redirect URI with the answer in its query (RFC 9207: with `iss`)."""
    query = urlencode({k: v for k, v in {**params, "iss": issuer}.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None
