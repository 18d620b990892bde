"""Users: SQL only."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import User


class UserRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.db.get(User, user_id)

    async def by_email(self, email: str) -> User | None:
        return (await self.db.execute(select(User).where(User.email == email))).scalar()

    async def email_taken(self, email: str, *, besides: uuid.UUID | None = None) -> bool:
        condition = User.email == email
        if besides is not None:
            condition &= User.id != besides
        return bool(await self.db.scalar(select(exists().where(condition))))

    def add(self, user: User) -> None:
        self.db.add(user)

    async def flush(self) -> None:
        await self.db.flush()
