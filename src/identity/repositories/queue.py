"""Claim and lease for every outbox channel (mail, webhook deliveries): SQL only.

A table with the `Queued` columns is a queue. A sender claims due rows with one statement
(PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent senders never take the same row): the
claim names the rows with a fresh claim id and moves `next_attempt_at` to the end of a
short lease, which the sender keeps extending while it lives. Every later write names the
claim, so a sender whose lease ran out (and whose rows another claimed) touches nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Queued
from identity.repositories import rowcount

PENDING = "pending"
Q = TypeVar("Q", bound=Queued)


class Queue(Generic[Q]):
    def __init__(self, db: AsyncSession, model: type[Q]) -> None:
        self.db = db
        self.model = model

    async def claim_due(
        self, now: datetime, claim: uuid.UUID, lease_until: datetime, limit: int
    ) -> list[Q]:
        """Take up to `limit` due rows for this claim until `lease_until`."""
        model: Any = self.model
        due = (
            select(model.id)
            .where(model.state == PENDING, model.next_attempt_at <= now)
            .order_by(model.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(model)
            .where(model.id.in_(due.scalar_subquery()))
            .values(claim=claim, next_attempt_at=lease_until)
            .returning(model)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        rows = list((await self.db.scalars(stmt)).all())
        return sorted(rows, key=lambda row: row.created_at)

    def claimed(self, row: Q) -> Any:
        """An UPDATE of this row that matches only while this claim still holds it."""
        model: Any = self.model
        return update(model).where(
            model.id == row.id,  # type: ignore[attr-defined]
            model.claim == row.claim,
            model.state == PENDING,
        )

    async def renew(self, row: Q, lease_until: datetime) -> bool:
        """Extend this row's lease; False if another claim has taken it (or it is done)."""
        return await rowcount(self.db, self.claimed(row).values(next_attempt_at=lease_until)) == 1

    async def keep_alive(self, claim: uuid.UUID, lease_until: datetime) -> set[uuid.UUID]:
        """Extend the lease of every row still held by a claim (the heartbeat): their ids."""
        model: Any = self.model
        stmt = (
            update(model)
            .where(model.claim == claim, model.state == PENDING)
            .values(next_attempt_at=lease_until)
            .returning(model.id)
        )
        return set((await self.db.execute(stmt)).scalars())

    async def finish(self, row: Q, **values: Any) -> bool:
        """Record an attempt's outcome (a state, a retry time, errors) under this claim."""
        model: Any = self.model
        values.setdefault("attempts", model.attempts + 1)
        values.setdefault("claim", None)
        return await rowcount(self.db, self.claimed(row).values(**values)) == 1

    async def finish_many(self, rows: list[Q], **values: Any) -> set[uuid.UUID]:
        """Record one outcome for several rows, each under its own claim: the ids of those
        still held (a row another claim took over is left to that claim)."""
        model: Any = self.model
        values.setdefault("attempts", model.attempts + 1)
        values.setdefault("claim", None)
        by_claim: dict[Any, list[uuid.UUID]] = {}
        for row in rows:
            by_claim.setdefault(row.claim, []).append(row.id)  # type: ignore[attr-defined]
        done: set[uuid.UUID] = set()
        for claim, ids in by_claim.items():
            stmt = (
                update(model)
                .where(model.id.in_(ids), model.claim == claim, model.state == PENDING)
                .values(**values)
                .returning(model.id)
                .execution_options(synchronize_session=False)
            )
            done |= set((await self.db.execute(stmt)).scalars())
        return done

    async def counts(self) -> dict[str, int]:
        model: Any = self.model
        stmt = select(model.state, func.count()).group_by(model.state)
        return {str(state): int(n) for state, n in (await self.db.execute(stmt)).all()}

    async def oldest_pending(self) -> datetime | None:
        model: Any = self.model
        stmt = select(func.min(model.created_at)).where(model.state == PENDING)
        value: datetime | None = await self.db.scalar(stmt)
        return value
