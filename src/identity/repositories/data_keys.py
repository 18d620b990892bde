"""Data keys (sealed under the server secret): SQL only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import DataKey


class DataKeyRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, name: str) -> bytes | None:
        sealed: bytes | None = await self.db.scalar(
            select(DataKey.sealed).where(DataKey.name == name)
        )
        return sealed

    def add(self, name: str, sealed: bytes, now: datetime) -> None:
        self.db.add(DataKey(name=name, sealed=sealed, created_at=now))
