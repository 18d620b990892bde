"""Challenges of multi-step flows (mfaTokens, enrolments, passkey ceremonies): SQL only."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import case, delete, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Challenge
from identity.repositories import rowcount


class ChallengeRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, challenge: Challenge) -> None:
        self.db.add(challenge)

    async def get(self, challenge_id: uuid.UUID) -> Challenge | None:
        return await self.db.get(Challenge, challenge_id)

    async def use(self, challenge_id: uuid.UUID, now: datetime) -> bool:
        """Spend a live challenge; False if it was used (also concurrently) or has expired."""
        stmt = (
            update(Challenge)
            .where(
                Challenge.id == challenge_id,
                Challenge.used_at.is_(None),
                Challenge.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(await rowcount(self.db, stmt))

    async def fail(self, challenge_id: uuid.UUID, allowed: int, now: datetime) -> None:
        """Count a wrong answer; the one that reaches `allowed` spends the challenge."""
        # The bound time keeps the column's type (SQLite stores these as naive UTC text).
        at = literal(now, Challenge.__table__.c.used_at.type)
        spent = case((Challenge.failures + 1 >= allowed, at), else_=Challenge.used_at)
        stmt = (
            update(Challenge)
            .where(Challenge.id == challenge_id, Challenge.used_at.is_(None))
            .values(failures=Challenge.failures + 1, used_at=spent)
        )
        await self.db.execute(stmt)

    async def void(self, user_id: uuid.UUID, purpose: str) -> int:
        """Drop a user's pending challenges of one purpose (a new enrolment voids the older)."""
        stmt = delete(Challenge).where(
            Challenge.user_id == user_id, Challenge.purpose == purpose, Challenge.used_at.is_(None)
        )
        return await rowcount(self.db, stmt)

    async def void_all(self, user_id: uuid.UUID) -> int:
        """Drop every pending challenge of a user (their factors were reset)."""
        return await rowcount(self.db, delete(Challenge).where(Challenge.user_id == user_id))

    async def remove(self, challenge_id: uuid.UUID) -> None:
        await self.db.execute(delete(Challenge).where(Challenge.id == challenge_id))

    async def prune(self, before: datetime) -> int:
        """Forget challenges that expired before `before` (nothing of them is needed)."""
        return await rowcount(self.db, delete(Challenge).where(Challenge.expires_at < before))
