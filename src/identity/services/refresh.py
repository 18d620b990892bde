"""Staying signed in: refresh-token rotation (with the grace rule for two tabs and reuse
detection), logout, and the rules by which a session is live, which OAuth grants (sessions
of a client) follow too."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from identity import metrics
from identity.db.models import Session
from identity.repositories.hot import PostgresHotPath
from identity.repositories.sessions import Rotated
from identity.services import events
from identity.services.auth import Auth, AuthResult
from identity.services.errors import InvalidToken
from identity.services.principal import Assurance, ProofOfKey
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

log = logging.getLogger("identity.auth")


def idle_since(rt: Runtime, now: datetime) -> datetime | None:
    """Sessions unused since then have ended (IDENTITY_REFRESH_IDLE_TIMEOUT), or None."""
    idle = rt.settings.refresh_idle_timeout
    return now - timedelta(seconds=idle) if idle else None


def live(rt: Runtime, session: Session, now: datetime) -> bool:
    """Not revoked, not past its end, not idle too long: the rules of identity's sessions."""
    since = idle_since(rt, now)
    return (
        session.revoked_at is None
        and session.expires_at > now
        and (since is None or session.last_used_at > since)
    )


def just_rotated(rt: Runtime, session: Session, counter: int, now: datetime) -> bool:
    """The token's successor was issued moments ago (IDENTITY_REFRESH_REUSE_GRACE): two tabs
    refreshed at once, not a stolen token come back."""
    grace = timedelta(seconds=rt.settings.refresh_reuse_grace)
    return session.refresh_counter == counter + 1 and now - session.refreshed_at <= grace


class Refresh:
    def __init__(self, rt: Runtime, auth: Auth, hot: PostgresHotPath | None = None) -> None:
        self.rt = rt
        self.auth = auth
        self.hot = hot

    async def refresh(
        self, uow: UnitOfWork, token: str | None, dpop: ProofOfKey | None = None
    ) -> AuthResult:
        """New tokens for a refresh token; a session bound to a DPoP key needs a proof by it
        (`dpop`: the request's proof, if it had one)."""
        session_id, counter = self.auth.open_refresh_token(token)
        dpop_jkt = None
        if dpop is not None:  # a refresh token of this server's: spend the proof
            await dpop.spend(uow)
            dpop_jkt = dpop.jkt
        now = self.rt.clock.now()
        since = idle_since(self.rt, now)
        # With DPoP required, a session from before (bound to no key) refreshes no more.
        unbound = self.rt.settings.dpop != "required"
        if self.hot is not None:  # PostgreSQL: rotate and read the user in one statement
            done = await self.hot.rotate(session_id, counter, now, since, dpop_jkt, unbound=unbound)
            if done is not None:
                user, roles, session = done
                return self.auth.issue(
                    user,
                    roles,
                    session_id,
                    counter + 1,
                    session.ends,
                    _assurance(session),
                    session.jkt,
                )
            rotated = None
        else:
            rotated = await uow.sessions.rotate(
                session_id, counter, now, since, dpop_jkt, unbound=unbound
            )
        if rotated is None:
            rotated = await self._successor_within_grace(
                uow, session_id, counter, now, dpop_jkt, unbound=unbound
            )
        counter += 1
        found = await uow.users.get(rotated.user_id)
        if found is None or not found.is_active:
            await uow.rollback()
            raise InvalidToken()
        roles = await uow.roles.of_user(found.id)
        await uow.commit()
        return self.auth.issue(
            found, roles, session_id, counter, rotated.ends, _assurance(rotated), rotated.jkt
        )

    async def _successor_within_grace(
        self,
        uow: UnitOfWork,
        session_id: uuid.UUID,
        counter: int,
        now: datetime,
        dpop_jkt: str | None,
        *,
        unbound: bool,
    ) -> Rotated:
        """The token was not current: the grace rule, or reuse detection."""
        session = await uow.sessions.get(session_id)
        if session is None or not live(self.rt, session, now) or counter >= session.refresh_counter:
            # Unknown, ended, or current but not rotated (its user was deactivated, or the
            # session is bound to a DPoP key the request did not prove).
            if session is not None and not _proven(session, dpop_jkt, unbound):
                log.info(
                    "refresh of DPoP-bound session %s refused: no proof by its key", session.id
                )
            raise InvalidToken()
        if not _proven(session, dpop_jkt, unbound):
            # A stolen token without the key: refused, and the session is left alone (ending
            # it would let the thief sign its owner out).
            raise InvalidToken()
        if just_rotated(self.rt, session, counter, now):
            # Two tabs refreshed at once: the slower one gets the same successor.
            return Rotated(
                user_id=session.user_id,
                ends=session.expires_at,
                aal=session.aal,
                amr=list(session.amr),
                jkt=session.dpop_jkt,
            )
        await self.reuse_detected(uow, session, now)
        raise InvalidToken()

    async def logout(
        self, uow: UnitOfWork, token: str | None, dpop: ProofOfKey | None = None
    ) -> None:
        session_id, counter = self.auth.open_refresh_token(token)
        dpop_jkt = None
        if dpop is not None:
            await dpop.spend(uow)
            dpop_jkt = dpop.jkt
        now = self.rt.clock.now()
        session = await uow.sessions.get(session_id)
        if session is None or not live(self.rt, session, now) or counter > session.refresh_counter:
            raise InvalidToken()
        if not _proven(session, dpop_jkt):  # a stolen refresh token cannot sign anyone out
            raise InvalidToken()
        current = session.refresh_counter == counter
        if not (current or just_rotated(self.rt, session, counter, now)):
            await self.reuse_detected(uow, session, now)
            raise InvalidToken()
        await uow.sessions.revoke(session.id, now, "logout")
        events.sessions_ended(uow.events, session.user_id, [session.id], "logout")
        uow.audit.record(
            "auth.logout",
            actor=session.user_id,
            subject=session.user_id,
            session_id=str(session.id),
        )
        await uow.commit()

    async def reuse_detected(self, uow: UnitOfWork, session: Session, now: datetime) -> None:
        """A used refresh token came back: someone else has it. End the whole session."""
        await uow.sessions.revoke(session.id, now, "reuse")
        events.sessions_ended(uow.events, session.user_id, [session.id], "reuse")
        metrics.REFRESH_REUSE.inc()
        log.warning(
            "a used refresh token came back: session %s of user %s ended",
            session.id,
            session.user_id,
        )
        uow.audit.record(
            "auth.refresh_token_reuse", subject=session.user_id, session_id=str(session.id)
        )
        await uow.commit()


def _proven(session: Session, dpop_jkt: str | None, unbound: bool = True) -> bool:
    """The request proved the DPoP key the session is bound to, or it is bound to none (and
    `unbound` sessions are allowed)."""
    if session.dpop_jkt is None:
        return unbound
    return session.dpop_jkt == dpop_jkt


def _assurance(session: Rotated) -> Assurance:
    return Assurance(aal=session.aal, amr=tuple(session.amr))
