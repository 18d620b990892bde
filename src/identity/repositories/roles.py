"""Roles, permissions and who holds which role: SQL only."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Permission, Role, RolePermission, UserRole
from identity.db.types import utcnow
from identity.repositories import rowcount


class RoleRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def all(self) -> list[Role]:
        return list((await self.db.execute(select(Role).order_by(Role.name))).scalars())

    async def get(self, role_id: uuid.UUID) -> Role | None:
        return await self.db.get(Role, role_id)

    def add(self, role: Role) -> None:
        self.db.add(role)

    async def flush(self) -> None:
        await self.db.flush()

    async def delete(self, role_id: uuid.UUID) -> bool:
        return bool(await rowcount(self.db, delete(Role).where(Role.id == role_id)))

    async def catalogue(self) -> list[Permission]:
        return list((await self.db.execute(select(Permission).order_by(Permission.code))).scalars())

    async def set_permissions(self, role_id: uuid.UUID, codes: Sequence[str]) -> None:
        await self.db.execute(delete(RolePermission).where(RolePermission.role_id == role_id))
        self.db.add_all(RolePermission(role_id=role_id, permission_code=code) for code in codes)
        await self.db.flush()

    async def permission_codes(self, role_id: uuid.UUID) -> list[str]:
        stmt = (
            select(RolePermission.permission_code)
            .where(RolePermission.role_id == role_id)
            .order_by(RolePermission.permission_code)
        )
        return list((await self.db.execute(stmt)).scalars())

    async def holders(self, role_id: uuid.UUID) -> list[uuid.UUID]:
        stmt = select(UserRole.user_id).where(UserRole.role_id == role_id)
        return list((await self.db.execute(stmt)).scalars())

    async def by_name(self, name: str) -> Role | None:
        return (await self.db.execute(select(Role).where(Role.name == name))).scalar()

    async def of_user(self, user_id: uuid.UUID) -> list[Role]:
        stmt = (
            select(Role)
            .join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user_id)
            .order_by(Role.name)
        )
        return list((await self.db.execute(stmt)).scalars())

    async def grant(self, user_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        """Give a role; False when the user already had it (also if given a moment ago)."""
        insert = pg_insert if self.db.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = (
            insert(UserRole)
            .values(user_id=user_id, role_id=role_id, created_at=utcnow())
            .on_conflict_do_nothing()
        )
        return bool(await rowcount(self.db, stmt))

    async def take(self, user_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        stmt = delete(UserRole).where(UserRole.user_id == user_id, UserRole.role_id == role_id)
        return bool(await rowcount(self.db, stmt))

    async def roles_of_users(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Role]]:
        stmt = (
            select(UserRole.user_id, Role)
            .join(Role, Role.id == UserRole.role_id)
            .where(UserRole.user_id.in_(user_ids))
            .order_by(Role.name)
        )
        result: dict[uuid.UUID, list[Role]] = defaultdict(list)
        for user_id, role in (await self.db.execute(stmt)).all():
            result[user_id].append(role)
        return result

    async def permission_codes_of_users(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[str]]:
        """Each user's effective permissions: the union over their roles, sorted."""
        stmt = (
            select(UserRole.user_id, RolePermission.permission_code)
            .join(RolePermission, RolePermission.role_id == UserRole.role_id)
            .where(UserRole.user_id.in_(user_ids))
            .distinct()
            .order_by(UserRole.user_id, RolePermission.permission_code)
        )
        result: dict[uuid.UUID, list[str]] = defaultdict(list)
        for user_id, code in (await self.db.execute(stmt)).all():
            result[user_id].append(code)
        return result

    async def permissions_of_roles(
        self, role_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Permission]]:
        stmt = (
            select(RolePermission.role_id, Permission)
            .join(Permission, Permission.code == RolePermission.permission_code)
            .where(RolePermission.role_id.in_(role_ids))
            .order_by(Permission.code)
        )
        result: dict[uuid.UUID, list[Permission]] = defaultdict(list)
        for role_id, permission in (await self.db.execute(stmt)).all():
            result[role_id].append(permission)
        return result
