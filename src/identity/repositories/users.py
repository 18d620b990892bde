"""Users: SQL only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.sql import Select

from identity.db.models import Factor, Role, User, UserRole, user_search_text
from identity.repositories import rowcount


@dataclass(frozen=True, slots=True)
class UserQuery:
    search: str | None = None
    role: str | None = None
    is_active: bool | None = None
    is_verified: bool | None = None


def _like_pattern(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class UserRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.db.get(User, user_id)

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        rows = (await self.db.execute(select(User).where(User.id.in_(user_ids)))).scalars()
        return {user.id: user for user in rows}

    async def by_email(self, email: str, *, with_roles: bool = False) -> User | None:
        stmt = select(User).where(User.email == email)
        if with_roles:  # one statement: the roles come joined
            stmt = stmt.options(joinedload(User.roles))
        return (await self.db.execute(stmt)).unique().scalar()

    async def for_sign_in(self, email: str) -> tuple[User, list[str]] | None:
        """The user with their roles, and the kinds of their second factors: one statement."""
        kinds = (
            select(func.aggregate_strings(Factor.kind, ","))
            .where(Factor.user_id == User.id)
            .scalar_subquery()
        )
        stmt = select(User, kinds).where(User.email == email).options(joinedload(User.roles))
        row = (await self.db.execute(stmt)).unique().first()
        if row is None:
            return None
        user, found = row
        return user, sorted(set(found.split(","))) if found else []

    async def upgrade_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        """The same password, hashed with today's parameters."""
        stmt = (
            update(User)
            .where(User.id == user_id)
            .values(password_hash=password_hash, updated_at=User.updated_at)
        )
        await self.db.execute(stmt)

    async def record_login(
        self,
        user_id: uuid.UUID,
        now: datetime,
        *,
        password_changed_at: datetime | None,
        password_hash: str | None = None,
    ) -> bool:
        """The sign-in time (and an upgraded hash); `updated_at` is for profile changes.

        Only while the account is active and its password is the one that was checked: a
        sign-in whose checks raced a deactivation or a password reset starts no session
        (False), since their "every session ends" has already run.
        """
        values: dict[str, object] = {"last_login_at": now, "updated_at": User.updated_at}
        if password_hash is not None:
            values["password_hash"] = password_hash
        stmt = (
            update(User)
            .where(
                User.id == user_id,
                User.is_active.is_(True),
                User.password_changed_at.is_not_distinct_from(password_changed_at),
            )
            .values(**values)
        )
        # The caller may hold this user's row; it sets `last_login_at` on it itself.
        return bool(await rowcount(self.db, stmt.execution_options(synchronize_session=False)))

    async def is_active(self, user_id: uuid.UUID) -> bool:
        return bool(await self.db.scalar(select(User.is_active).where(User.id == user_id)))

    async def email_taken(self, email: str, *, besides: uuid.UUID | None = None) -> bool:
        condition = User.email == email
        if besides is not None:
            condition &= User.id != besides
        return bool(await self.db.scalar(select(exists().where(condition))))

    def add(self, user: User) -> None:
        self.db.add(user)

    async def flush(self) -> None:
        await self.db.flush()

    async def delete(self, user_id: uuid.UUID) -> bool:
        return bool(await rowcount(self.db, delete(User).where(User.id == user_id)))

    def _filtered(self, query: UserQuery) -> Select[User]:
        stmt = select(User)
        if query.search:
            stmt = stmt.where(user_search_text().like(_like_pattern(query.search), escape="\\"))
        if query.role is not None:
            stmt = stmt.where(
                exists()
                .where(UserRole.user_id == User.id, UserRole.role_id == Role.id)
                .where(Role.name == query.role)
            )
        if query.is_active is not None:
            stmt = stmt.where(User.is_active.is_(query.is_active))
        if query.is_verified is not None:
            stmt = stmt.where(User.is_verified.is_(query.is_verified))
        return stmt

    async def page(
        self, query: UserQuery, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[User]:
        """Oldest first, keyset on (created_at, id): a page costs the same at any depth."""
        stmt = self._filtered(query)
        if after is not None:
            stmt = stmt.where(tuple_(User.created_at, User.id) > tuple_(*after))
        stmt = stmt.order_by(User.created_at, User.id).limit(limit)
        return list((await self.db.execute(stmt)).scalars())

    async def count(self, query: UserQuery) -> int:
        stmt = select(func.count()).select_from(self._filtered(query).subquery())
        return int(await self.db.scalar(stmt) or 0)

    async def active_holders_of(self, role_name: str, *, besides: uuid.UUID | None = None) -> int:
        stmt = (
            select(func.count())
            .select_from(User)
            .join(UserRole, UserRole.user_id == User.id)
            .join(Role, Role.id == UserRole.role_id)
            .where(Role.name == role_name, User.is_active.is_(True))
        )
        if besides is not None:
            stmt = stmt.where(User.id != besides)
        return int(await self.db.scalar(stmt) or 0)
