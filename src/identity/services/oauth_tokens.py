"""The token side of the OpenID Provider: client authentication, the grants and ID tokens
(userinfo, revocation and introspection are in oauth_access).

A grant is a session row that belongs to a client: its refresh token is derived from
(id, counter) under a purpose of its own, so identity's `refreshToken` never takes it and
this endpoint never takes identity's; rotation and reuse detection are those of sessions.
Access tokens have the client as audience and carry `client_id`: /graphql refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from identity.db.models import Session, User
from identity.db.oauth_models import OAuthClient
from identity.security.derive import read_token
from identity.services import events
from identity.services.challenges import OAUTH_CODE, Challenges, was_issued
from identity.services.errors import InvalidToken, ProofReplayed
from identity.services.oauth_access import TokenUse
from identity.services.oauth_authorize import CHALLENGE
from identity.services.oauth_clients import STANDARD_SCOPES, OAuthClients
from identity.services.oauth_common import (
    ACCESS_TOKEN_TYPE,
    GRANT_REFRESH_PURPOSE,
    ID_TOKEN_TYPE,
    ClientCredentials,
    OAuthError,
    parse_scope,
    user_claims,
)
from identity.services.principal import ClientInfo, ProofOfKey
from identity.services.refresh import idle_since, just_rotated, live
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

_GRANT_IDS = 16 + 8
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class Tokens(TokenUse):
    """The token endpoint's grants, and (from TokenUse) what the other endpoints do."""

    def __init__(self, rt: Runtime, challenges: Challenges, clients: OAuthClients) -> None:
        self.rt = rt
        self.challenges = challenges
        self.clients = clients

    # Clients ----------------------------------------------------------------------------

    async def client(
        self, uow: UnitOfWork, credentials: ClientCredentials | None, *, confidential: bool = False
    ) -> OAuthClient:
        """The authenticated client: a confidential one by its secret, a public one by its
        id alone (only where `confidential` is not required)."""
        if credentials is None:
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        client = await self.clients.find(uow, credentials.client_id)
        if client is None:
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        if client.is_confidential:
            if credentials.secret is None or not await self.clients.secret_matches(
                client, credentials.secret
            ):
                raise OAuthError("invalid_client", "Client authentication failed.", 401)
        elif credentials.secret is not None or confidential:
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        return client

    # The token endpoint -----------------------------------------------------------------

    async def grant(
        self,
        uow: UnitOfWork,
        client: OAuthClient,
        form: dict[str, str],
        peer: ClientInfo,
        proof: ProofOfKey | None = None,
    ) -> dict[str, Any]:
        """`proof`: the request's DPoP proof, checked (RFC 9449 §5): the tokens are bound to
        its key, and a grant bound to a key refreshes only with a proof by it."""
        if proof is None and self.rt.settings.dpop == "required" and not client.is_confidential:
            raise OAuthError("invalid_dpop_proof", "A DPoP proof is required.")
        if proof is not None:
            try:
                await proof.spend(uow)
            except ProofReplayed:
                raise OAuthError("invalid_dpop_proof", "This proof was used already.") from None
        jkt = None if proof is None else proof.jkt
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return await self._authorization_code(uow, client, form, peer, jkt)
        if grant_type == "refresh_token":
            return await self._refresh(uow, client, form, jkt)
        if grant_type == "client_credentials":
            return await self._client_credentials(uow, client, form, jkt)
        if grant_type is None:
            raise OAuthError("invalid_request", "grant_type is required.")
        raise OAuthError(
            "unsupported_grant_type",
            "Supported: authorization_code, refresh_token, client_credentials.",
        )

    async def _authorization_code(
        self,
        uow: UnitOfWork,
        client: OAuthClient,
        form: dict[str, str],
        peer: ClientInfo,
        jkt: str | None,
    ) -> dict[str, Any]:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code or not form.get("redirect_uri"):
            raise OAuthError("invalid_request", "code and redirect_uri are required.")
        if not verifier or not 43 <= len(verifier) <= 128 or set(verifier) - _VERIFIER_CHARS:
            raise OAuthError("invalid_request", "code_verifier (43 to 128 characters) is required.")
        try:
            row, user = await self.challenges.open(uow, code, OAUTH_CODE)
        except InvalidToken:
            await self._replayed(uow, client, code)
            raise OAuthError("invalid_grant", "The code is invalid, used or expired.") from None
        data = row.data
        # The sign-in that authorized the code must still stand: a code issued just before
        # "sign out everywhere" (or a sign-out) starts no grant.
        authorized_by = await uow.sessions.get(uuid.UUID(data["session"]))
        if authorized_by is None or not live(self.rt, authorized_by, self.rt.clock.now()):
            raise OAuthError("invalid_grant", "The code is invalid, used or expired.")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if (
            user is None
            or data["client"] != str(client.id)
            or data["redirect_uri"] != form["redirect_uri"]
            or not CHALLENGE.match(data["code_challenge"])
            or not hmac.compare_digest(expected, data["code_challenge"])
        ):
            raise OAuthError("invalid_grant", "The code is invalid, used or expired.")
        try:
            await self.challenges.spend(uow, row)
        except InvalidToken:
            raise OAuthError("invalid_grant", "The code is invalid, used or expired.") from None
        scopes: list[str] = data["scope"]
        offline = "offline_access" in scopes
        now = self.rt.clock.now()
        ttl = self.rt.settings.refresh_token_ttl if offline else self.rt.settings.access_token_ttl
        grant = Session(
            id=row.id,  # the code's id: a replayed code names the grant it started
            user_id=user.id,
            oauth_client_id=client.id,
            scope=" ".join(scopes),
            created_at=now,
            last_used_at=now,
            refreshed_at=now,
            expires_at=now + timedelta(seconds=ttl),
            user_agent=(peer.user_agent or "")[:512] or None,
            ip_address=peer.ip_address,
            refresh_counter=0,
            aal=data["aal"],
            amr=data["amr"],
            authenticated_at=datetime.fromtimestamp(data["auth_time"], UTC),
            dpop_jkt=jkt,
        )
        uow.sessions.add(grant)
        uow.events.add(events.SESSION_CREATED, events.session_data(grant))  # a session too
        uow.audit.record(
            "oauth.code_exchanged",
            actor=user.id,
            subject=user.id,
            client_id=client.client_id,
            grant_id=str(grant.id),
            scopes=scopes,
        )
        await uow.commit()
        answer = self._tokens(
            client, user.id, grant, scopes, counter=0 if offline else None, jkt=jkt
        )
        if "openid" in scopes:
            answer["id_token"] = self.id_token(client, user, grant, data)
        return answer

    async def _replayed(self, uow: UnitOfWork, client: OAuthClient, code: str) -> None:
        """A used code came back (RFC 6749 §4.1.2): end the grant it started, whose tokens
        may have been taken with it."""
        parts = read_token(code, 16)
        grant = await uow.oauth_clients.grant(uuid.UUID(bytes=parts[0])) if parts else None
        if grant is None or grant.oauth_client_id != client.id or grant.revoked_at is not None:
            return
        # Only a code this server made for the grant's user: grant ids are no secret (an
        # access token's `sid`), and a made-up code must not end anyone's grant.
        user = await uow.users.get(grant.user_id)
        if user is None or was_issued(self.rt.secret, code, OAUTH_CODE, user) != grant.id:
            return
        await uow.sessions.revoke(grant.id, self.rt.clock.now(), "code_reuse")
        events.sessions_ended(uow.events, grant.user_id, [grant.id], "code_reuse")
        uow.audit.record(
            "oauth.code_reuse",
            subject=grant.user_id,
            client_id=client.client_id,
            grant_id=str(grant.id),
        )
        await uow.commit()

    async def _refresh(
        self, uow: UnitOfWork, client: OAuthClient, form: dict[str, str], jkt: str | None
    ) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required.")
        ids = self.rt.secret.open_token(GRANT_REFRESH_PURPOSE, token, _GRANT_IDS)
        if ids is None:
            raise OAuthError("invalid_grant", "The refresh token is invalid or was revoked.")
        grant_id, counter = uuid.UUID(bytes=ids[:16]), int.from_bytes(ids[16:], "big")
        grant = await uow.oauth_clients.grant(grant_id)
        now = self.rt.clock.now()
        if grant is None or grant.oauth_client_id != client.id or not live(self.rt, grant, now):
            raise OAuthError("invalid_grant", "The refresh token is invalid or was revoked.")
        scopes = parse_scope(grant.scope)
        asked = parse_scope(form.get("scope")) or scopes
        if not set(asked) <= set(scopes):
            raise OAuthError("invalid_scope", "A refresh cannot widen the grant's scope.")
        if grant.dpop_jkt is not None and grant.dpop_jkt != jkt:
            # A stolen refresh token without the key: refused, the grant left alone.
            raise OAuthError("invalid_dpop_proof", "Send a DPoP proof by the grant's key.")
        idle = idle_since(self.rt, now)
        rotated = await uow.sessions.rotate(grant_id, counter, now, idle, grant.dpop_jkt)
        if rotated is None and not just_rotated(self.rt, grant, counter, now):
            await uow.sessions.revoke(grant.id, now, "reuse")
            events.sessions_ended(uow.events, grant.user_id, [grant.id], "reuse")
            uow.audit.record(
                "oauth.refresh_token_reuse",
                subject=grant.user_id,
                client_id=client.client_id,
                grant_id=str(grant.id),
            )
            await uow.commit()
            raise OAuthError("invalid_grant", "The refresh token is invalid or was revoked.")
        user = await uow.users.get(grant.user_id)
        if user is None or not user.is_active:
            await uow.rollback()
            raise OAuthError("invalid_grant", "The refresh token is invalid or was revoked.")
        await uow.commit()
        return self._tokens(client, user.id, grant, asked, counter=counter + 1, jkt=grant.dpop_jkt)

    async def _client_credentials(
        self, uow: UnitOfWork, client: OAuthClient, form: dict[str, str], jkt: str | None
    ) -> dict[str, Any]:
        if not client.is_confidential:
            raise OAuthError("unauthorized_client", "Only confidential clients may use this grant.")
        own = [s for s in client.allowed_scopes if s not in STANDARD_SCOPES]
        asked = parse_scope(form.get("scope")) or own
        if not set(asked) <= set(own):
            raise OAuthError("invalid_scope", "Ask only for scopes the client is allowed.")
        await uow.release()  # nothing written; the client row stays loaded
        return self._tokens(client, None, None, asked, counter=None, jkt=jkt)

    def _tokens(
        self,
        client: OAuthClient,
        user_id: uuid.UUID | None,
        grant: Session | None,
        scopes: list[str],
        *,
        counter: int | None,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        now = self.rt.clock.now()
        iat = int(now.timestamp())
        ttl = self.rt.settings.access_token_ttl
        claims: dict[str, Any] = {
            "iss": self.rt.settings.issuer,
            "aud": client.client_id,
            "sub": str(user_id) if user_id is not None else client.client_id,
            "client_id": client.client_id,
            "scope": " ".join(scopes),
            "iat": iat,
            "exp": iat + ttl,
            "jti": uuid.uuid4().hex,
        }
        if grant is not None:
            claims["sid"] = str(grant.id)
        if jkt is not None:  # sender-constrained (RFC 9449): useless without the key
            claims["cnf"] = {"jkt": jkt}
        access = self.rt.keyring.sign_claims(claims, typ=ACCESS_TOKEN_TYPE, now=now)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer" if jkt is None else "DPoP",
            "expires_in": ttl,
            "scope": " ".join(scopes),
        }
        if grant is not None and counter is not None:
            answer["refresh_token"] = self.refresh_token(grant.id, counter)
        return answer

    def refresh_token(self, grant_id: uuid.UUID, counter: int) -> str:
        return self.rt.secret.token(
            GRANT_REFRESH_PURPOSE, grant_id.bytes + counter.to_bytes(8, "big")
        )

    def id_token(
        self, client: OAuthClient, user: User, grant: Session, code: dict[str, Any]
    ) -> str:
        now = self.rt.clock.now()
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.rt.settings.issuer,
            "sub": str(user.id),
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": iat + self.rt.settings.access_token_ttl,
            "iat": iat,
            "auth_time": code["auth_time"],
            "amr": code["amr"],
            "acr": f"aal{code['aal']}",
            "sid": code["session"],
        }
        if code.get("nonce"):
            claims["nonce"] = code["nonce"]
        claims.update(user_claims(user, parse_scope(grant.scope)))
        return self.rt.keyring.sign_claims(claims, typ=ID_TOKEN_TYPE, now=now)
