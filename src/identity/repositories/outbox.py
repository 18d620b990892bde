"""The mail outbox: SQL only (claim and lease come from the shared queue)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import OutboxMessage
from identity.repositories.queue import PENDING, Queue

SENT = "sent"
FAILED = "failed"
VOIDED = "voided"  # its link was used, replaced or expired before it went out


class OutboxRepository(Queue[OutboxMessage]):
    def __init__(self, db: AsyncSession) -> None:
        super().__init__(db, OutboxMessage)

    def add(self, message: OutboxMessage) -> None:
        self.db.add(message)

    async def unsent(self, limit: int = 100) -> list[OutboxMessage]:
        """Pending, failed and voided messages, oldest first."""
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.state != SENT)
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        )
        return list((await self.db.execute(stmt)).scalars())

    async def all_counts(self) -> dict[str, int]:
        counts = await self.counts()
        return {state: counts.get(state, 0) for state in (PENDING, FAILED, VOIDED, SENT)}
