"""Challenges of multi-step flows (mfaTokens, enrolments, passkey ceremonies): SQL only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Challenge, User
from identity.repositories import rowcount


class ChallengeRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, challenge: Challenge) -> None:
        self.db.add(challenge)

    async def get(self, challenge_id: uuid.UUID) -> Challenge | None:
        return await self.db.get(Challenge, challenge_id)

    async def with_user(self, challenge_id: uuid.UUID) -> tuple[Challenge, User | None] | None:
        """A challenge and its user (if it has one) in one statement."""
        stmt = (
            select(Challenge, User)
            .outerjoin(User, User.id == Challenge.user_id)
            .where(Challenge.id == challenge_id)
        )
        row = (await self.db.execute(stmt)).first()
        return None if row is None else (row[0], row[1])

    async def use(
        self, challenge_id: uuid.UUID, now: datetime, webauthn: str | None = None
    ) -> bool:
        """Spend a live challenge: it is deleted. False if it was spent (also concurrently)
        or has expired, or, with `webauthn`, if its WebAuthn challenge is another by now."""
        stmt = delete(Challenge).where(*_live(challenge_id, now))
        if webauthn is not None:
            stmt = stmt.where(Challenge.data["webauthn"].as_string() == webauthn)
        return bool(await rowcount(self.db, stmt))

    async def set_data(self, challenge_id: uuid.UUID, data: dict[str, Any], now: datetime) -> bool:
        """Replace the data of a live challenge; False if it was spent or has expired."""
        stmt = update(Challenge).where(*_live(challenge_id, now)).values(data=data)
        return bool(await rowcount(self.db, stmt))

    async def attempt(self, challenge_id: uuid.UUID, allowed: int, now: datetime) -> bool:
        """Reserve one answer before it is checked; False once `allowed` are used up.

        Counted first, so a concurrent burst against one challenge gets no more answers than
        `allowed`. A wrong answer that used the last one spends the challenge (see
        `close_if_exhausted`); a right one deletes it anyway.
        """
        stmt = (
            update(Challenge)
            .where(*_live(challenge_id, now), Challenge.failures < allowed)
            .values(failures=Challenge.failures + 1)
        )
        return bool(await rowcount(self.db, stmt))

    async def close_if_exhausted(
        self, challenge_id: uuid.UUID, allowed: int, now: datetime
    ) -> None:
        """After a wrong answer: a challenge whose answers are used up is spent."""
        # The bound time keeps the column's type (SQLite stores these as naive UTC text).
        at = literal(now, Challenge.__table__.c.used_at.type)
        stmt = (
            update(Challenge)
            .where(Challenge.id == challenge_id, Challenge.failures >= allowed)
            .values(used_at=at)
        )
        await self.db.execute(stmt)

    async def void(self, user_id: uuid.UUID, purpose: str, client: str | None = None) -> int:
        """Drop a user's pending challenges of one purpose (a new enrolment voids the older),
        or only those for one OAuth client (`client`: its id, as the challenges hold it)."""
        stmt = delete(Challenge).where(
            Challenge.user_id == user_id, Challenge.purpose == purpose, Challenge.used_at.is_(None)
        )
        if client is not None:
            stmt = stmt.where(Challenge.data["client"].as_string() == client)
        return await rowcount(self.db, stmt)

    async def void_all(self, user_id: uuid.UUID) -> int:
        """Drop every pending challenge of a user (their factors were reset)."""
        return await rowcount(self.db, delete(Challenge).where(Challenge.user_id == user_id))

    async def prune(self, now: datetime) -> int:
        """Delete what has expired (an unconfirmed enrolment leaves nothing behind)."""
        return await rowcount(self.db, delete(Challenge).where(Challenge.expires_at <= now))


def _live(challenge_id: uuid.UUID, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The challenge, while it is neither spent nor expired."""
    return (Challenge.id == challenge_id, Challenge.used_at.is_(None), Challenge.expires_at > now)
