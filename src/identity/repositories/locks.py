"""Cross-process locks for one-time work (first key, migrations) held by a transaction."""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


def lock_id(name: str) -> int:
    return zlib.crc32(f"identity:{name}".encode())


class LockRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def hold(self, name: str) -> None:
        """Hold `name` until the transaction ends.

        PostgreSQL: an advisory lock shared by every instance. SQLite: write transactions
        begin IMMEDIATE (see db.engine), which already serializes them.
        """
        if self.db.get_bind().dialect.name == "postgresql":
            await self.db.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id(name)})
