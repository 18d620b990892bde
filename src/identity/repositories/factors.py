"""Second factors and recovery codes: SQL only."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Factor, RecoveryCode
from identity.repositories import rowcount


class FactorRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, factor: Factor) -> None:
        self.db.add(factor)

    async def get(self, factor_id: uuid.UUID) -> Factor | None:
        return await self.db.get(Factor, factor_id)

    async def of_user(self, user_id: uuid.UUID, kind: str | None = None) -> list[Factor]:
        stmt = select(Factor).where(Factor.user_id == user_id).order_by(Factor.created_at)
        if kind is not None:
            stmt = stmt.where(Factor.kind == kind)
        return list((await self.db.execute(stmt)).scalars())

    async def of_users(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Factor]]:
        stmt = select(Factor).where(Factor.user_id.in_(user_ids)).order_by(Factor.created_at)
        result: dict[uuid.UUID, list[Factor]] = defaultdict(list)
        for factor in (await self.db.execute(stmt)).scalars():
            result[factor.user_id].append(factor)
        return result

    async def kinds(self, user_id: uuid.UUID) -> list[str]:
        """The kinds of a user's factors (read under the user's factor lock, it cannot miss
        one being added concurrently)."""
        stmt = select(Factor.kind).where(Factor.user_id == user_id).distinct()
        return sorted((await self.db.execute(stmt)).scalars())

    async def count(self, user_id: uuid.UUID) -> int:
        stmt = select(func.count()).where(Factor.user_id == user_id)
        return int(await self.db.scalar(stmt) or 0)

    async def accept_step(self, factor_id: uuid.UUID, step: int, now: datetime) -> bool:
        """Record a TOTP time step as used; False if it (or a later one) already was.

        A compare-and-set: of two requests racing with the same code, one wins.
        """
        stmt = (
            update(Factor)
            .where(Factor.id == factor_id)
            .where((Factor.last_step.is_(None)) | (Factor.last_step < step))
            .values(last_step=step, last_used_at=now)
        )
        return bool(await rowcount(self.db, stmt))

    async def by_credential(self, credential_id: bytes) -> Factor | None:
        stmt = select(Factor).where(Factor.credential_id == credential_id)
        return (await self.db.execute(stmt)).scalars().first()

    async def record_assertion(
        self, factor: Factor, sign_count: int, backup_state: bool, now: datetime
    ) -> bool:
        """Store a passkey's new counter; False if another sign-in moved it meanwhile.

        A compare-and-set on the counter read before the assertion was verified.
        """
        stmt = (
            update(Factor)
            .where(Factor.id == factor.id, Factor.sign_count == factor.sign_count)
            .values(sign_count=sign_count, backup_state=backup_state, last_used_at=now)
        )
        return bool(await rowcount(self.db, stmt))

    async def remove(self, factor_id: uuid.UUID) -> bool:
        return bool(await rowcount(self.db, delete(Factor).where(Factor.id == factor_id)))

    async def remove_all(self, user_id: uuid.UUID) -> int:
        return await rowcount(self.db, delete(Factor).where(Factor.user_id == user_id))


class RecoveryCodeRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def replace(self, user_id: uuid.UUID, digests: Sequence[bytes], now: datetime) -> None:
        """A new set; any earlier set is void."""
        await self.remove_all(user_id)
        self.db.add_all(
            RecoveryCode(id=uuid.uuid4(), user_id=user_id, digest=digest, created_at=now)
            for digest in digests
        )
        await self.db.flush()

    async def use(self, user_id: uuid.UUID, digest: bytes, now: datetime) -> bool:
        """Spend an unused code of this user; False if there is none (or it was just spent)."""
        stmt = (
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.digest == digest,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
        )
        return bool(await rowcount(self.db, stmt))

    async def left(self, user_id: uuid.UUID) -> int:
        return (await self.left_of_users([user_id])).get(user_id, 0)

    async def left_of_users(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        stmt = (
            select(RecoveryCode.user_id, func.count())
            .where(RecoveryCode.user_id.in_(user_ids), RecoveryCode.used_at.is_(None))
            .group_by(RecoveryCode.user_id)
        )
        return {user_id: int(n) for user_id, n in (await self.db.execute(stmt)).all()}

    async def remove_all(self, user_id: uuid.UUID) -> int:
        return await rowcount(self.db, delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
