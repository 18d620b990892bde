"""Signing in: login, its second step, sessions started, and access tokens (issued, and
checked on every request). Refresh and logout are in services.refresh."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from identity import metrics
from identity.db.models import Role, Session, User
from identity.repositories.hot import PostgresHotPath
from identity.repositories.keys import KeyRepository
from identity.repositories.sessions import SessionRepository
from identity.repositories.users import UserRepository
from identity.security import webauthn
from identity.security.jwt import InvalidAccessToken, UnknownKey
from identity.security.webauthn import Credential, RelyingParty
from identity.services import events
from identity.services.challenges import MFA, Challenges, factor_lock
from identity.services.errors import (
    AccountDisabled,
    DomainError,
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
)
from identity.services.principal import (
    PASSWORD,
    PASSWORD_ONLY,
    Assurance,
    ClientInfo,
    Principal,
    granted_roles,
    grants,
)
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

log = logging.getLogger("identity.auth")

REFRESH_PURPOSE = "refresh-token"
_REFRESH_IDS = 16 + 8  # session id, counter


@dataclass(frozen=True, slots=True)
class AuthResult:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    roles: list[Role]
    session_id: uuid.UUID
    session_ends: datetime  # the refresh token's absolute end (a cookie's lifetime)
    assurance: Assurance = PASSWORD_ONLY
    dpop_jkt: str | None = None  # the tokens are bound to this DPoP key (token type DPoP)


@dataclass(frozen=True, slots=True)
class MfaPending:
    """The password was right; the sign-in needs a second factor (no session yet)."""

    mfa_token: str
    methods: list[str]  # TOTP, RECOVERY_CODE, PASSKEY
    expires_in: int
    passkey_options: dict[str, Any] | None = None  # WebAuthn request options, with PASSKEY


class Unauthenticated(Exception):
    """A token was given but cannot be used: malformed, expired, revoked, ended session."""


class Auth:
    def __init__(
        self,
        rt: Runtime,
        throttle: Throttle,
        challenges: Challenges,
        reads: async_sessionmaker[AsyncSession],
        hot: PostgresHotPath | None = None,
        rp: RelyingParty | None = None,
    ) -> None:
        self.rt = rt
        self.rp = rp
        self.throttle = throttle
        self.challenges = challenges
        self.reads = reads
        self.hot = hot
        self._keys_reloaded_at = 0.0

    async def keys_reloaded(self) -> bool:
        """Reload the signing keys, at most once a second (unknown kids can be sent at will)."""
        now = time.monotonic()
        if now - self._keys_reloaded_at < 1.0:
            return False
        self._keys_reloaded_at = now
        async with self.reads() as db:
            self.rt.keyring.load(await KeyRepository(db).all())
        return True

    # Tokens -----------------------------------------------------------------------------

    def refresh_token(self, session_id: uuid.UUID, counter: int) -> str:
        return self.rt.secret.token(REFRESH_PURPOSE, session_id.bytes + counter.to_bytes(8, "big"))

    def open_refresh_token(self, token: str | None) -> tuple[uuid.UUID, int]:
        ids = self.rt.secret.open_token(REFRESH_PURPOSE, token or "", _REFRESH_IDS)
        if ids is None:
            raise InvalidToken()
        return uuid.UUID(bytes=ids[:16]), int.from_bytes(ids[16:], "big")

    def issue(
        self,
        user: User,
        roles: list[Role],
        session_id: uuid.UUID,
        counter: int,
        session_ends: datetime,
        assurance: Assurance,
        dpop_jkt: str | None = None,
    ) -> AuthResult:
        # Other services read `roles`: a role that requires MFA is left out at aal 1.
        access = self.rt.keyring.sign(
            sub=user.id,
            sid=session_id,
            roles=[r.name for r in granted_roles(roles, assurance.aal)],
            aal=assurance.aal,
            amr=list(assurance.amr),
            app_metadata=user.app_metadata or {},
            now=self.rt.clock.now(),
            jkt=dpop_jkt,
        )
        return AuthResult(
            access_token=access,
            refresh_token=self.refresh_token(session_id, counter),
            expires_in=self.rt.settings.access_token_ttl,
            user=user,
            roles=roles,
            session_id=session_id,
            session_ends=session_ends,
            assurance=assurance,
            dpop_jkt=dpop_jkt,
        )

    async def start_session(
        self,
        uow: UnitOfWork,
        user: User,
        client: ClientInfo,
        *,
        password_hash: str | None = None,
        assurance: Assurance = PASSWORD_ONLY,
        roles: list[Role] | None = None,
    ) -> AuthResult:
        """Open a session for a user (read with their roles, or with `roles` given) whose
        credentials were just proven, storing an upgraded password hash if there is one;
        commits."""
        now = self.rt.clock.now()
        session = Session(
            id=uuid.uuid4(),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            refreshed_at=now,
            expires_at=now + timedelta(seconds=self.rt.settings.refresh_token_ttl),
            user_agent=(client.user_agent or "")[:512] or None,
            ip_address=client.ip_address,
            refresh_counter=0,
            aal=assurance.aal,
            amr=list(assurance.amr),
            authenticated_at=now,
            dpop_jkt=client.dpop_jkt,
        )
        if client.dpop is not None:  # the credentials are proven: the proof is spent now
            await client.dpop.spend(uow)
        # A new device, not the first sign-in ever (that is the account's own first device).
        if (
            self.rt.settings.notify_new_sign_in
            and user.last_login_at is not None
            and not await uow.sessions.device_seen(user.id, session.user_agent)
        ):
            uow.outbox.add(
                "new_sign_in",
                user.email,
                first_name=user.first_name,
                user_agent=session.user_agent or "unknown",
                ip_address=session.ip_address or "unknown",
            )
        uow.sessions.add(session)
        if not await uow.users.record_login(
            user.id, now, password_changed_at=user.password_changed_at, password_hash=password_hash
        ):
            # Deactivated, or the password changed, while the credentials were being checked.
            await uow.rollback()
            raise InvalidCredentials()
        uow.audit.record(
            "auth.login",
            actor=user.id,
            subject=user.id,
            session_id=str(session.id),
            amr=list(assurance.amr),
        )
        uow.events.add(events.SESSION_CREATED, events.session_data(session))
        await uow.commit()
        # As stored, without marking the row changed (the UPDATE above wrote it).
        set_committed_value(user, "last_login_at", now)
        roles = list(user.roles) if roles is None else roles
        return self.issue(
            user, roles, session.id, 0, session.expires_at, assurance, session.dpop_jkt
        )

    # Use cases --------------------------------------------------------------------------

    async def login(
        self, uow: UnitOfWork, email: str, password: str, client: ClientInfo
    ) -> AuthResult | MfaPending:
        check = Checker()
        email = check.email("email", email)
        as_typed, password = password, check.given_password("password", password)
        check.done()

        try:
            await self.throttle.per_address(self.throttle.login_address, uow.client)
            # A read of its own: no connection is held while the password is checked.
            async with self.reads() as db:
                found = await UserRepository(db).for_sign_in(email)
            user, factor_kinds = found if found is not None else (None, [])
            await self.throttle.before_credentials(uow, email, user)
        except RateLimited:
            metrics.LOGINS.labels("rate_limited").inc()
            raise
        # An unknown address costs the same as a wrong password: a dummy hash is verified.
        # An imported hash may come from a system that did not normalize: as typed is tried too.
        verification = await self.rt.hasher.verify(
            user.password_hash if user else None, password, as_typed=as_typed
        )
        if user is None or not verification.ok:
            await self.throttle.credentials_failed(uow, email, user)
            reason = "unknown_email" if user is None else "wrong_password"
            await self._refuse(uow, user, email, reason, InvalidCredentials())
        assert user is not None
        await self.throttle.credentials_succeeded(email)
        if not user.is_active:
            await self._refuse(uow, user, email, "disabled", AccountDisabled())
        if self.rt.settings.require_verified_email and not user.is_verified:
            await self._refuse(uow, user, email, "unverified", EmailNotVerified())
        upgraded = await self.rt.hasher.hash(password) if verification.needs_rehash else None
        if not factor_kinds:
            # MFA may have been turned on while the password was checked: look again under
            # the lock enrolment holds, in the transaction that will start the session.
            await uow.locks.hold(factor_lock(user.id))
            factor_kinds = await uow.factors.kinds(user.id)
        if factor_kinds:
            metrics.LOGINS.labels("mfa_required").inc()
            return await self.second_step(uow, user, factor_kinds, upgraded=upgraded)
        metrics.LOGINS.labels("success").inc()
        return await self.start_session(uow, user, client, password_hash=upgraded)

    async def second_step(
        self,
        uow: UnitOfWork,
        user: User,
        factor_kinds: list[str],
        *,
        upgraded: str | None = None,
        amr: tuple[str, ...] = (PASSWORD,),
    ) -> MfaPending:
        """The first factor (`amr`) was right and MFA is on: an mfaToken instead of a session."""
        if upgraded is not None:
            await uow.users.upgrade_hash(user.id, upgraded)
        data: dict[str, Any] = {"amr": list(amr)}
        passkey_options = None
        if "passkey" in factor_kinds:
            challenge = webauthn.new_challenge()
            passkey_options = await self.passkey_options(uow, user.id, challenge)
            if passkey_options is not None:
                data["webauthn"] = webauthn.encode(challenge)
        if passkey_options is None:
            factor_kinds = [k for k in factor_kinds if k != "passkey"]
        issued = await self.challenges.issue(uow, MFA, user, data=data)
        # Recovery codes come with MFA: while it is on there is a set, used up or not.
        methods = [k.upper() for k in ("totp", "passkey") if k in factor_kinds] + ["RECOVERY_CODE"]
        uow.audit.record("auth.mfa_challenged", subject=user.id, methods=methods)
        await uow.commit()
        return MfaPending(
            mfa_token=issued.token,
            methods=methods,
            expires_in=issued.expires_in,
            passkey_options=passkey_options,
        )

    async def passkey_options(
        self, uow: UnitOfWork, user_id: uuid.UUID, challenge: bytes
    ) -> dict[str, Any] | None:
        """Request options naming only this user's passkeys (a second step's); None without
        passkeys or a relying party."""
        passkeys = await uow.factors.of_user(user_id, "passkey")
        if self.rp is None or not passkeys:
            return None
        return self.rp.request_options(
            challenge=challenge, allow=[Credential.of(f) for f in passkeys]
        )

    async def _refuse(
        self, uow: UnitOfWork, user: User | None, email: str, reason: str, error: DomainError
    ) -> NoReturn:
        """Record a failed sign-in (the address tried, never the password) and refuse it."""
        metrics.LOGINS.labels(reason).inc()
        uow.audit.record(
            "auth.login_failed", subject=user.id if user else None, email=email, reason=reason
        )
        await uow.commit()
        raise error

    async def authenticate(self, access_token: str, dpop_jkt: str | None = None) -> Principal:
        """The principal behind an access token, checked against the database every time.

        `dpop_jkt` is the key of the request's DPoP proof (for the `DPoP` scheme): a token
        bound to a key (`cnf.jkt`) needs a proof by it, and a bearer token takes none.
        """
        now = self.rt.clock.now()
        try:
            claims = self.rt.keyring.verify(access_token, now)
        except UnknownKey:
            # A key rotated in by another instance that this one has not reloaded yet.
            if not await self.keys_reloaded():
                raise Unauthenticated() from None
            try:
                claims = self.rt.keyring.verify(access_token, now)
            except InvalidAccessToken:
                raise Unauthenticated() from None
        except InvalidAccessToken:
            raise Unauthenticated() from None
        if claims.jkt != dpop_jkt:
            raise Unauthenticated()
        if self.hot is not None:
            rows = await self.hot.principal(
                session_id=claims.sid, user_id=claims.sub, kid=claims.kid, now=now
            )
        else:
            async with self.reads() as db:
                rows = await SessionRepository(db).load_principal(
                    session_id=claims.sid, user_id=claims.sub, kid=claims.kid, now=now
                )
        if rows is None:
            raise Unauthenticated()
        granted, withheld = grants(rows.roles, rows.permissions, rows.aal)
        return Principal(
            user=rows.user,
            session_id=claims.sid,
            roles=rows.roles,
            role_permissions=rows.permissions,
            permissions=granted,
            withheld=withheld,
            assurance=Assurance(aal=rows.aal, amr=tuple(rows.amr)),
            authenticated_at=rows.authenticated_at,
        )
