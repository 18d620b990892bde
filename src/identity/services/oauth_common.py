"""What the OpenID Provider's use cases share: protocol errors, scopes, the hosted session.

identity's own browser session (what the hosted pages, `prompt=none` and `max_age` look at)
is an ordinary session row, named by a cookie holding a token derived from its id: ended
by every rule that ends sessions, and worthless without the server secret.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from identity.db.models import Session, User
from identity.db.oauth_models import OAuthClient
from identity.services.oauth_clients import STANDARD_SCOPES
from identity.services.refresh import live
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

HOSTED_SESSION_PURPOSE = "hosted-session"
GRANT_REFRESH_PURPOSE = "oauth-refresh-token"  # never identity's own "refresh-token"
ACCESS_TOKEN_TYPE = "at+jwt"
ID_TOKEN_TYPE = "JWT"


class OAuthError(Exception):
    """An RFC 6749 error: `error` code, a description for developers, the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True, slots=True)
class Hosted:
    """A live hosted-page session and its (active) user."""

    session: Session
    user: User


def hosted_cookie_value(rt: Runtime, session_id: uuid.UUID) -> str:
    return rt.secret.token(HOSTED_SESSION_PURPOSE, session_id.bytes)


async def hosted_session(rt: Runtime, uow: UnitOfWork, cookie: str | None) -> Hosted | None:
    """The live session a hosted-session cookie names, or None."""
    if not cookie:
        return None
    ids = rt.secret.open_token(HOSTED_SESSION_PURPOSE, cookie, 16)
    if ids is None:
        return None
    session = await uow.sessions.get(uuid.UUID(bytes=ids))
    now = rt.clock.now()
    if session is None or not live(rt, session, now) or session.oauth_client_id:
        return None
    user = await uow.users.get(session.user_id)
    if user is None or not user.is_active:
        return None
    session.last_used_at = now  # in use: IDENTITY_REFRESH_IDLE_TIMEOUT counts from here
    return Hosted(session=session, user=user)


def allowed_scopes(client: OAuthClient) -> set[str]:
    """What a client may ask for in the code flow."""
    return set(STANDARD_SCOPES) | set(client.allowed_scopes)


def parse_scope(text: str | None) -> list[str]:
    """A space-separated scope parameter as a list without repeats, in the given order."""
    return list(dict.fromkeys((text or "").split()))


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    secret: str | None
    method: str  # client_secret_basic | client_secret_post | none


def user_claims(user: User, scopes: list[str]) -> dict[str, Any]:
    """The standard claims the scopes allow (OpenID Connect Core §5.4)."""
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims.update(email=user.email, email_verified=user.is_verified)
    if "profile" in scopes:
        name = f"{user.first_name} {user.last_name}".strip()
        claims.update(
            name=name,
            given_name=user.first_name,
            family_name=user.last_name,
            updated_at=int(user.updated_at.timestamp()),
        )
    return claims
