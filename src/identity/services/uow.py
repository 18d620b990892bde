"""The unit of work: one database transaction and the repositories bound to it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from identity.repositories.keys import KeyRepository
from identity.repositories.locks import LockRepository
from identity.repositories.roles import RoleRepository
from identity.repositories.sessions import SessionRepository
from identity.repositories.transfer import TransferRepository
from identity.repositories.users import UserRepository


class UnitOfWork:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.users = UserRepository(db)
        self.roles = RoleRepository(db)
        self.sessions = SessionRepository(db)
        self.keys = KeyRepository(db)
        self.locks = LockRepository(db)
        self.transfer = TransferRepository(db)

    async def commit(self) -> None:
        await self.db.commit()

    async def release(self) -> None:
        """End the transaction so far and give the connection back (before slow work)."""
        await self.db.commit()

    async def rollback(self) -> None:
        await self.db.rollback()
