"""The mail outbox: SQL only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import OutboxMessage
from identity.repositories import rowcount


class OutboxRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, message: OutboxMessage) -> None:
        self.db.add(message)

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxMessage]:
        """Take due messages for this sender until `lease_until`.

        PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent senders never take the same row;
        the lease keeps it theirs after the transaction ends, while they send.
        """
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        messages = list((await self.db.execute(stmt)).scalars())
        for message in messages:
            message.next_attempt_at = lease_until
            message.attempts += 1
        return messages

    # A claim is known by its attempt number: a later claim (by any instance, once the lease
    # has run out) counts another attempt, and the earlier claimant then touches nothing.

    def _claimed(self, message: OutboxMessage) -> Any:
        return update(OutboxMessage).where(
            OutboxMessage.id == message.id,
            OutboxMessage.attempts == message.attempts,
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
        )

    async def renew(self, message: OutboxMessage, lease_until: datetime) -> bool:
        """Extend this claim's lease; False if another claim has taken the message."""
        return (
            await rowcount(self.db, self._claimed(message).values(next_attempt_at=lease_until)) == 1
        )

    async def mark_sent(self, message: OutboxMessage, now: datetime) -> None:
        await self.db.execute(self._claimed(message).values(sent_at=now))

    async def mark_failed_attempt(
        self, message: OutboxMessage, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        values: dict[str, object] = {"last_error": error[:2000]}
        if retry_at is None:
            values["failed_at"] = now
        else:
            values["next_attempt_at"] = retry_at
        await self.db.execute(self._claimed(message).values(**values))

    async def pending(self, limit: int = 100) -> list[OutboxMessage]:
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None))
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        )
        return list((await self.db.execute(stmt)).scalars())

    async def counts(self) -> dict[str, int]:
        pending = await self.db.scalar(
            select(func.count()).where(
                OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None)
            )
        )
        failed = await self.db.scalar(
            select(func.count()).where(OutboxMessage.failed_at.is_not(None))
        )
        sent = await self.db.scalar(select(func.count()).where(OutboxMessage.sent_at.is_not(None)))
        return {"pending": int(pending or 0), "failed": int(failed or 0), "sent": int(sent or 0)}
