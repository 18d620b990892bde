"""Users in bulk, for import and export: set-based SQL only, a few statements per batch."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Row,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import OneTimeToken, Role, Session, User, UserRole

USERS = cast("Table", User.__table__)
USER_ROLES = cast("Table", UserRole.__table__)


@dataclass(frozen=True, slots=True)
class ExistingUser:
    id: uuid.UUID
    password_hash: str | None
    is_active: bool


class TransferRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT: each dialect has its own construct."""
        name = self.db.get_bind().dialect.name
        if name == "postgresql":
            return postgresql.insert(table)
        if name == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"bulk upsert on {name}")

    async def plan_for_each_batch(self) -> None:
        """PostgreSQL: plan lookups for the values they get (call at a transaction's start).

        asyncpg prepares statements, and after a few runs PostgreSQL may switch to a generic
        plan made while the table was small: a sequential scan comparing every row with
        every value of the batch. A million-row import then slows down batch after batch.
        """
        if self.db.get_bind().dialect.name == "postgresql":
            await self.db.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))

    async def role_ids(self) -> dict[str, uuid.UUID]:
        rows = await self.db.execute(select(Role.name, Role.id))
        return dict(rows.all())

    async def existing(self, emails: Collection[str]) -> dict[str, ExistingUser]:
        stmt = select(User.email, User.id, User.password_hash, User.is_active).where(
            User.email.in_(emails)
        )
        rows = await self.db.execute(stmt)
        return {
            email: ExistingUser(id=user_id, password_hash=password_hash, is_active=is_active)
            for email, user_id, password_hash, is_active in rows
        }

    async def upsert_users(
        self, rows: Sequence[Mapping[str, Any]], *, update: Collection[str]
    ) -> dict[str, uuid.UUID]:
        """Insert new users and update the `update` columns of existing ones (by email).

        One statement for all rows. An existing row that would not change is left alone.
        Returns email -> id of every row inserted or changed: an id other than the one the
        row brought means the user already existed.
        """
        stmt = self._insert(USERS)
        new = stmt.excluded
        if update:
            changes: dict[str, Any] = {name: new[name] for name in update}
            changes["updated_at"] = new.updated_at
            if "password_hash" in update:
                changes["password_changed_at"] = case(
                    (USERS.c.password_hash.is_distinct_from(new.password_hash), new.updated_at),
                    else_=USERS.c.password_changed_at,
                )
            differs = or_(*(USERS.c[name].is_distinct_from(new[name]) for name in update))
            stmt = stmt.on_conflict_do_update(
                index_elements=[USERS.c.email], set_=changes, where=differs
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=[USERS.c.email])
        result = await self.db.execute(stmt.returning(USERS.c.email, USERS.c.id), list(rows))
        return dict(result.all())

    async def roles_of(self, user_ids: Collection[uuid.UUID]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        stmt = select(UserRole.user_id, UserRole.role_id).where(UserRole.user_id.in_(user_ids))
        return set((await self.db.execute(stmt)).all())

    async def grant(self, pairs: Collection[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> None:
        if not pairs:
            return
        # RETURNING makes SQLAlchemy send one multi-row INSERT per page ("insertmanyvalues")
        # instead of a statement per row.
        stmt = self._insert(USER_ROLES).on_conflict_do_nothing().returning(USER_ROLES.c.user_id)
        await self.db.execute(
            stmt, [{"user_id": u, "role_id": r, "created_at": now} for u, r in pairs]
        )

    async def take(self, pairs: Collection[tuple[uuid.UUID, uuid.UUID]]) -> None:
        if not pairs:
            return
        stmt = delete(USER_ROLES).where(
            and_(
                USER_ROLES.c.user_id == bindparam("u", type_=USER_ROLES.c.user_id.type),
                USER_ROLES.c.role_id == bindparam("r", type_=USER_ROLES.c.role_id.type),
            )
        )
        await self.db.execute(stmt, [{"u": u, "r": r} for u, r in pairs])

    async def end_sessions(
        self, user_ids: Collection[uuid.UUID], now: datetime, reason: str
    ) -> None:
        if not user_ids:
            return
        stmt = (
            update(Session)
            .where(Session.user_id.in_(user_ids), Session.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        await self.db.execute(stmt)
        # As for a password change in the API: outstanding links stop working too.
        await self.db.execute(
            update(OneTimeToken)
            .where(OneTimeToken.user_id.in_(user_ids), OneTimeToken.used_at.is_(None))
            .values(used_at=now)
        )

    async def active_holders(self, role_name: str) -> int:
        stmt = (
            select(func.count())
            .select_from(User)
            .join(UserRole, UserRole.user_id == User.id)
            .join(Role, Role.id == UserRole.role_id)
            .where(Role.name == role_name, User.is_active.is_(True))
        )
        return int(await self.db.scalar(stmt) or 0)

    async def stream_users(self, chunk: int = 1000) -> AsyncIterator[Row[Any]]:
        """Every user with each role name (one row per role, None without roles), in order.

        One statement, so one consistent snapshot; streamed (a server-side cursor on
        PostgreSQL), so memory stays flat however many users there are.
        """
        stmt = (
            select(
                User.id,
                User.email,
                User.first_name,
                User.last_name,
                User.is_verified,
                User.is_active,
                User.created_at,
                User.password_hash,
                User.app_metadata,
                User.user_metadata,
                Role.name.label("role"),
            )
            .outerjoin(UserRole, UserRole.user_id == User.id)
            .outerjoin(Role, Role.id == UserRole.role_id)
            .order_by(User.created_at, User.id, Role.name)
            .execution_options(yield_per=chunk)
        )
        result = await self.db.stream(stmt)
        async for row in result:
            yield row
