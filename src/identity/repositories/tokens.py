"""One-time tokens: SQL only."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import OneTimeToken
from identity.repositories import rowcount

UNDO_PURPOSE = "revert_change"  # services.tokens.REVERT_CHANGE


class OneTimeTokenRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, token: OneTimeToken) -> None:
        self.db.add(token)

    async def get(self, token_id: uuid.UUID) -> OneTimeToken | None:
        return await self.db.get(OneTimeToken, token_id)

    async def use(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Mark a token used; False if it already was (single use, also under concurrency)."""
        stmt = (
            update(OneTimeToken)
            .where(OneTimeToken.id == token_id, OneTimeToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(await rowcount(self.db, stmt))

    async def void(self, user_id: uuid.UUID, now: datetime, purpose: str | None = None) -> int:
        """Void a user's outstanding tokens (of one purpose, or all but the undo links of
        added factors, which must survive the password change an intruder would make)."""
        stmt = update(OneTimeToken).where(
            OneTimeToken.user_id == user_id, OneTimeToken.used_at.is_(None)
        )
        if purpose is not None:
            stmt = stmt.where(OneTimeToken.purpose == purpose)
        else:
            stmt = stmt.where(OneTimeToken.purpose != UNDO_PURPOSE)
        return await rowcount(self.db, stmt.values(used_at=now))
