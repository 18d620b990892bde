"""Using the OpenID Provider's tokens: userinfo, revocation (RFC 7009), introspection
(RFC 7662) and the logout hint; a base of `Tokens`, which issues them."""

from __future__ import annotations

import uuid
from typing import Any

from identity.db.models import User
from identity.db.oauth_models import OAuthClient
from identity.security.jwt import InvalidAccessToken
from identity.services import events
from identity.services.oauth_common import (
    ACCESS_TOKEN_TYPE,
    GRANT_REFRESH_PURPOSE,
    ID_TOKEN_TYPE,
    OAuthError,
    parse_scope,
    user_claims,
)
from identity.services.refresh import live
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

_GRANT_IDS = 16 + 8


class TokenUse:
    rt: Runtime

    # Using tokens -----------------------------------------------------------------------

    async def access(
        self, uow: UnitOfWork, token: str, jkt: str | None = None, *, any_key: bool = False
    ) -> tuple[dict[str, Any], User | None]:
        """A live client access token's claims and user; InvalidAccessToken otherwise.

        `jkt`: the key the request proved (DPoP); a token bound to a key (`cnf.jkt`) needs
        that one, a bearer token none. `any_key`: for the client's own introspection and
        revocation, which do not present the token for use.
        """
        now = self.rt.clock.now()
        claims = self.rt.keyring.decode(token, now, typ=ACCESS_TOKEN_TYPE)
        if "client_id" not in claims or claims.get("aud") != claims["client_id"]:
            raise InvalidAccessToken("not a client's token")
        cnf = claims.get("cnf")
        bound = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not any_key and bound != jkt:
            raise InvalidAccessToken("bound to another DPoP key, or to none")
        if "sid" not in claims:
            return claims, None  # client_credentials: no user, nothing to end
        grant = await uow.oauth_clients.grant(uuid.UUID(str(claims["sid"])))
        if grant is None or not live(self.rt, grant, self.rt.clock.now()):
            raise InvalidAccessToken("grant ended")
        user = await uow.users.get(grant.user_id)
        if user is None or not user.is_active or str(user.id) != claims["sub"]:
            raise InvalidAccessToken("user gone")
        return claims, user

    async def userinfo(self, uow: UnitOfWork, token: str, jkt: str | None = None) -> dict[str, Any]:
        """`jkt`: the key of the request's DPoP proof (the DPoP scheme), if any."""
        try:
            claims, user = await self.access(uow, token, jkt)
        except (InvalidAccessToken, ValueError):
            raise OAuthError(
                "invalid_token", "The access token is invalid or expired.", 401
            ) from None
        scopes = parse_scope(claims.get("scope"))
        if user is None or "openid" not in scopes:
            raise OAuthError("insufficient_scope", "The token lacks the openid scope.", 403)
        return {"sub": str(user.id), **user_claims(user, scopes)}

    async def revoke(self, uow: UnitOfWork, client: OAuthClient, token: str) -> None:
        """RFC 7009: end the grant behind a refresh or access token of this client; any
        other token is ignored (the answer is the same)."""
        grant_id = self._grant_of(token) or await self._grant_of_access(uow, token, client)
        if grant_id is None:
            return
        grant = await uow.oauth_clients.grant(grant_id)
        if grant is None or grant.oauth_client_id != client.id:
            return
        if await uow.sessions.revoke(grant.id, self.rt.clock.now(), "revoked"):
            events.sessions_ended(uow.events, grant.user_id, [grant.id], "revoked")
            uow.audit.record(
                "oauth.token_revoked",
                subject=grant.user_id,
                client_id=client.client_id,
                grant_id=str(grant.id),
            )
        await uow.commit()

    async def introspect(self, uow: UnitOfWork, client: OAuthClient, token: str) -> dict[str, Any]:
        """RFC 7662, for the client's own tokens; anything else is inactive."""
        now = self.rt.clock.now()
        ids = self.rt.secret.open_token(GRANT_REFRESH_PURPOSE, token, _GRANT_IDS)
        if ids is not None:
            grant = await uow.oauth_clients.grant(uuid.UUID(bytes=ids[:16]))
            counter = int.from_bytes(ids[16:], "big")
            if (
                grant is None
                or grant.oauth_client_id != client.id
                or not live(self.rt, grant, now)
                or counter != grant.refresh_counter
            ):
                return {"active": False}
            return {
                "active": True,
                "token_type": "refresh_token",
                "client_id": client.client_id,
                "sub": str(grant.user_id),
                "scope": grant.scope or "",
                "exp": int(grant.expires_at.timestamp()),
                "iss": self.rt.settings.issuer,
            }
        try:
            claims, _ = await self.access(uow, token, any_key=True)
        except (InvalidAccessToken, ValueError):
            return {"active": False}
        if claims["client_id"] != client.client_id:
            return {"active": False}
        keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf")
        kind = "DPoP" if "cnf" in claims else "Bearer"
        return {"active": True, "token_type": kind, **{k: claims[k] for k in keep if k in claims}}

    def _grant_of(self, token: str) -> uuid.UUID | None:
        ids = self.rt.secret.open_token(GRANT_REFRESH_PURPOSE, token, _GRANT_IDS)
        return uuid.UUID(bytes=ids[:16]) if ids is not None else None

    async def _grant_of_access(
        self, uow: UnitOfWork, token: str, client: OAuthClient
    ) -> uuid.UUID | None:
        try:
            claims, _ = await self.access(uow, token, any_key=True)
        except (InvalidAccessToken, ValueError):
            return None
        if claims["client_id"] != client.client_id or "sid" not in claims:
            return None
        return uuid.UUID(str(claims["sid"]))

    def logout_hint(self, token: str) -> tuple[str, str | None] | None:
        """The (client id, hosted session id) of an ID token this provider signed (expired
        ones too: a logout often comes long after sign-in); None if it is not one."""
        try:
            claims = self.rt.keyring.decode(
                token, self.rt.clock.now(), typ=ID_TOKEN_TYPE, check_expiry=False
            )
        except InvalidAccessToken:
            return None
        aud = claims.get("aud")
        if not isinstance(aud, str):
            return None
        sid = claims.get("sid")
        return aud, sid if isinstance(sid, str) else None
