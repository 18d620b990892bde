"""Signing keys: SQL only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import SigningKey
from identity.repositories import rowcount
from identity.security.jwt import NewKey, StoredKey


class KeyRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def all(self) -> list[StoredKey]:
        rows = (
            await self.db.execute(select(SigningKey).order_by(SigningKey.activates_at))
        ).scalars()
        return [
            StoredKey(
                kid=row.kid,
                algorithm=row.algorithm,
                public_jwk=row.public_jwk,
                private_key=row.private_key,
                created_at=row.created_at,
                activates_at=row.activates_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]

    def add(self, key: NewKey, *, created_at: datetime, activates_at: datetime, note: str) -> None:
        self.db.add(
            SigningKey(
                kid=key.kid,
                algorithm=key.algorithm,
                public_jwk=key.public_jwk,
                private_key=key.encrypted_private_key,
                created_at=created_at,
                activates_at=activates_at,
                note=note,
            )
        )

    async def revoke(self, kid: str, now: datetime) -> bool:
        stmt = (
            update(SigningKey)
            .where(SigningKey.kid == kid, SigningKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(await rowcount(self.db, stmt))
