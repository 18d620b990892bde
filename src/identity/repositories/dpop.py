"""The DPoP proofs seen recently, for the replay check when Redis does not keep them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import DpopProof
from identity.repositories import rowcount


class DpopProofRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def first_use(self, key: str, expires_at: datetime) -> bool:
        """Record the proof; False if it was recorded already (a replay)."""
        insert = pg_insert if self.db.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(DpopProof).values(key=key, expires_at=expires_at).on_conflict_do_nothing()
        return bool(await rowcount(self.db, stmt))

    async def prune(self, now: datetime) -> int:
        return await rowcount(self.db, delete(DpopProof).where(DpopProof.expires_at <= now))
