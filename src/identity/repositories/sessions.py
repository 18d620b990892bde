"""Sessions (signed-in devices, each also a refresh-token family): SQL only."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Permission, Role, RolePermission, Session, SigningKey, User, UserRole
from identity.repositories import rowcount


@dataclass(frozen=True, slots=True)
class PrincipalRows:
    user: User
    roles: list[Role]
    permissions: dict[uuid.UUID, list[Permission]]  # by role id
    aal: int
    amr: list[str]
    authenticated_at: datetime


@dataclass(frozen=True, slots=True)
class Rotated:
    """A session whose refresh token was just rotated: whose it is, its end and assurance."""

    user_id: uuid.UUID
    ends: datetime
    aal: int
    amr: list[str]
    jkt: str | None = None  # the DPoP key the session is bound to


class SessionRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, session: Session) -> None:
        self.db.add(session)

    async def get(self, session_id: uuid.UUID) -> Session | None:
        return await self.db.get(Session, session_id)

    async def live_of_users(
        self, user_ids: Sequence[uuid.UUID], now: datetime
    ) -> dict[uuid.UUID, list[Session]]:
        """Each user's sessions that have not ended, newest first."""
        stmt = (
            select(Session)
            .where(
                Session.user_id.in_(user_ids),
                Session.revoked_at.is_(None),
                Session.expires_at > now,
                Session.oauth_client_id.is_(None),  # a client's grant is not a device
            )
            .order_by(Session.created_at.desc())
        )
        result: dict[uuid.UUID, list[Session]] = defaultdict(list)
        for session in (await self.db.execute(stmt)).scalars():
            result[session.user_id].append(session)
        return result

    async def rotate(
        self,
        session_id: uuid.UUID,
        counter: int,
        now: datetime,
        idle_since: datetime | None,
        jkt: str | None = None,
        *,
        unbound: bool = True,
    ) -> Rotated | None:
        """Advance a live session's refresh counter from `counter`; None if it was not.

        The compare-and-set on the counter makes two concurrent refreshes with the same
        token produce one successor: the second update matches no row. A session bound to a
        DPoP key rotates only for a proof by that key (`jkt`); an unbound one only while
        `unbound` sessions may (DPoP is not required).
        """
        bound: ColumnElement[bool] = Session.dpop_jkt.is_(None) if unbound else false()
        if jkt is not None:
            bound = or_(bound, Session.dpop_jkt == jkt)
        stmt = (
            update(Session)
            .where(
                Session.id == session_id,
                Session.refresh_counter == counter,
                Session.revoked_at.is_(None),
                Session.expires_at > now,
                bound,
            )
            .values(refresh_counter=counter + 1, refreshed_at=now, last_used_at=now)
            .returning(
                Session.user_id, Session.expires_at, Session.aal, Session.amr, Session.dpop_jkt
            )
        )
        if idle_since is not None:
            stmt = stmt.where(Session.last_used_at > idle_since)
        row = (await self.db.execute(stmt)).first()
        return None if row is None else Rotated(*row)

    async def device_seen(self, user_id: uuid.UUID, user_agent: str | None) -> bool:
        """Has this user signed in before with this user agent?"""
        # A client's grant records the client's server, not a device of the user.
        condition = (Session.user_id == user_id) & Session.oauth_client_id.is_(None)
        condition &= (
            Session.user_agent.is_(None) if user_agent is None else Session.user_agent == user_agent
        )
        return bool(await self.db.scalar(select(exists().where(condition))))

    async def revoke(self, session_id: uuid.UUID, now: datetime, reason: str) -> bool:
        stmt = (
            update(Session)
            .where(Session.id == session_id, Session.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        return bool(await rowcount(self.db, stmt))

    async def revoke_all(
        self, user_id: uuid.UUID, now: datetime, reason: str, *, keep: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        """End the user's sessions (but `keep`); the ids of those ended."""
        stmt = update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
        if keep is not None:
            stmt = stmt.where(Session.id != keep)
        stmt = stmt.values(revoked_at=now, revoked_reason=reason).returning(Session.id)
        return list((await self.db.execute(stmt)).scalars())

    async def load_principal(
        self, *, session_id: uuid.UUID, user_id: uuid.UUID, kid: str, now: datetime
    ) -> PrincipalRows | None:
        """The user, their roles and permissions, if the session and signing key are live.

        One statement, one round trip: this runs on every authenticated request.
        """
        stmt = (
            select(User, Role, Permission, Session.aal, Session.amr, Session.authenticated_at)
            .select_from(Session)
            .join(User, User.id == Session.user_id)
            .outerjoin(UserRole, UserRole.user_id == User.id)
            .outerjoin(Role, Role.id == UserRole.role_id)
            .outerjoin(RolePermission, RolePermission.role_id == Role.id)
            .outerjoin(Permission, Permission.code == RolePermission.permission_code)
            .where(
                Session.id == session_id,
                Session.user_id == user_id,
                Session.revoked_at.is_(None),
                Session.expires_at > now,
                User.is_active.is_(True),
                exists().where(SigningKey.kid == kid, SigningKey.revoked_at.is_(None)),
            )
        )
        rows = (await self.db.execute(stmt)).all()
        if not rows:
            return None
        roles: dict[uuid.UUID, Role] = {}
        permissions: dict[uuid.UUID, list[Permission]] = {}
        for _user, role, permission, *_session in rows:
            if role is None:
                continue
            roles.setdefault(role.id, role)
            granted = permissions.setdefault(role.id, [])
            if permission is not None:
                granted.append(permission)
        return PrincipalRows(
            user=rows[0][0],
            aal=rows[0][3],
            amr=list(rows[0][4]),
            authenticated_at=rows[0][5],
            roles=sorted(roles.values(), key=lambda r: r.name),
            permissions={
                role_id: sorted(granted, key=lambda p: p.code)
                for role_id, granted in permissions.items()
            },
        )

    async def set_assurance(self, session_id: uuid.UUID, aal: int, amr: list[str]) -> None:
        """The session's level from now on (a factor proven in it, or MFA turned off).

        Not its sign-in time: proving a factor one just added is not signing in, so the
        re-authentication window still counts from the sign-in.
        """
        stmt = update(Session).where(Session.id == session_id).values(aal=aal, amr=amr)
        await self.db.execute(stmt)
