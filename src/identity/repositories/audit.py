"""Audit events: SQL only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from identity.db.models import AuditEvent
from identity.repositories import rowcount


@dataclass(frozen=True, slots=True)
class AuditQuery:
    user_id: uuid.UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, event: AuditEvent) -> None:
        self.db.add(event)

    def _filtered(self, query: AuditQuery) -> Select[AuditEvent]:
        stmt = select(AuditEvent)
        if query.user_id is not None:
            stmt = stmt.where(
                or_(AuditEvent.actor_id == query.user_id, AuditEvent.subject_id == query.user_id)
            )
        if query.action is not None:
            stmt = stmt.where(AuditEvent.action == query.action)
        if query.since is not None:
            stmt = stmt.where(AuditEvent.occurred_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(AuditEvent.occurred_at < query.until)
        return stmt

    async def page(
        self, query: AuditQuery, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[AuditEvent]:
        """Newest first, keyset on (occurred_at, id)."""
        stmt = self._filtered(query)
        if before is not None:
            stmt = stmt.where(tuple_(AuditEvent.occurred_at, AuditEvent.id) < tuple_(*before))
        stmt = stmt.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit)
        return list((await self.db.execute(stmt)).scalars())

    async def count(self, query: AuditQuery) -> int:
        stmt = select(func.count()).select_from(self._filtered(query).subquery())
        return int(await self.db.scalar(stmt) or 0)

    async def prune(self, older_than: datetime) -> int:
        return await rowcount(
            self.db, delete(AuditEvent).where(AuditEvent.occurred_at < older_than)
        )


def new_event(
    action: str,
    *,
    occurred_at: datetime,
    actor: uuid.UUID | None,
    subject: uuid.UUID | None,
    ip_address: str | None,
    user_agent: str | None,
    details: dict[str, Any],
) -> AuditEvent:
    return AuditEvent(
        id=uuid.uuid4(),
        occurred_at=occurred_at,
        action=action,
        actor_id=actor,
        subject_id=subject,
        ip_address=ip_address,
        user_agent=(user_agent or "")[:512] or None,
        details=details,
    )
