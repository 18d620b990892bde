"""Accounts at other OpenID Connect providers, linked to users: SQL only."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import ExternalAccount, Factor
from identity.repositories import rowcount


class ExternalAccountRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, account: ExternalAccount) -> None:
        self.db.add(account)

    async def flush(self) -> None:
        await self.db.flush()

    async def get(self, account_id: uuid.UUID) -> ExternalAccount | None:
        return await self.db.get(ExternalAccount, account_id)

    async def find(self, provider: str, subject: str) -> ExternalAccount | None:
        stmt = select(ExternalAccount).where(
            ExternalAccount.provider == provider, ExternalAccount.subject == subject
        )
        return (await self.db.execute(stmt)).scalar_one_or_none()

    async def of_users(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ExternalAccount]]:
        stmt = (
            select(ExternalAccount)
            .where(ExternalAccount.user_id.in_(user_ids))
            .order_by(ExternalAccount.linked_at, ExternalAccount.id)
        )
        result: dict[uuid.UUID, list[ExternalAccount]] = defaultdict(list)
        for account in (await self.db.execute(stmt)).scalars():
            result[account.user_id].append(account)
        return result

    async def used(self, account_id: uuid.UUID, now: datetime) -> None:
        stmt = update(ExternalAccount).where(ExternalAccount.id == account_id)
        await self.db.execute(stmt.values(last_used_at=now))

    async def remove(self, account_id: uuid.UUID) -> bool:
        stmt = delete(ExternalAccount).where(ExternalAccount.id == account_id)
        return bool(await rowcount(self.db, stmt))

    async def other_sign_in_methods(self, user_id: uuid.UUID, besides: uuid.UUID) -> int:
        """The user's external accounts other than `besides`, and passkeys (which sign in
        alone): what is left to sign in with, beside a password."""
        accounts = select(func.count()).where(
            ExternalAccount.user_id == user_id, ExternalAccount.id != besides
        )
        passkeys = select(func.count()).where(Factor.user_id == user_id, Factor.kind == "passkey")
        return int(await self.db.scalar(accounts) or 0) + int(await self.db.scalar(passkeys) or 0)
